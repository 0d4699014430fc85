"""Every operation in the OpenAPI document, fed requests generated from it (schemathesis), valid
and invalid: none answers with a server error.

The API's own 5xx answers are deliberate and say so: a check whose ``at_least_revision`` the
directory has not reached is 503 ``stale``. Anything else from 500 up is a request that got past
validation and broke something, which is what this looks for. It found ids past PostgreSQL's
INTEGER range; the other 500s that ``schemathesis run`` found with it (made-up cursors, OPTIONS,
times that UTC cannot hold) are pinned down one by one in test_bad_input.py.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
# How `schemathesis run` builds its cases; not a public API, so pyproject.toml pins schemathesis to
# the release this was written against. (Its pytest plugin does not run on pytest 9.)
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test

from test_authorize import world  # noqa: F401 (a fixture: a small portal directory)

DELIBERATE = {(503, "stale")}
EXAMPLES = 12  # per operation and mode: ~1,200 requests in all


def test_no_generated_request_gets_a_server_error(app, world, token_for, make_grant):  # noqa: F811
    # One caller holding every role on the service, so that no operation stops at 403.
    headers = token_for("user:fuzz", "admin")
    for role in ("portal_client", "security_lead", "auditor"):
        make_grant("user:fuzz", role, "system:accessreview")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []

    def probe(case) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500 and (response.status_code, _code(response)) not in DELIBERATE:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} "
                            f"{response.text[:300]}\n  {case.as_curl_command()}")

    # The coverage phase's boundary values (nulls, huge numbers, odd formats) and then random fuzzing,
    # as `schemathesis run` does.
    config = HypothesisTestConfig(
        project=schema.config, modes=[HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING],
        settings=settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck)))
    for result in schema.get_all_operations():
        create_test(operation=result.ok(), test_func=probe, config=config)()
    assert not failures, "\n".join(failures)


def _code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
