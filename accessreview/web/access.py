"""The access explorer, for security leads and auditors: who has access to a resource and through
which grants, what a principal holds, and why one check is allowed or denied. Answers come from the
same evaluator as the portal's checks, at the directory's current revision."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request

from ..authz.deadline import Deadline
from ..authz.engine import get_engine
from ..db import get_session
from ..directory import service as directory
from ..directory.schemas import PrincipalKey, ResourceKey
from ..guard import authorize, clock_now, page_limit
from ..models import Decision, Principal
from ..pagination import Cursor
from ..validation import Strict, column_text, parse_query
from .blueprint import _when, bp
from .forms import EXAMPLES, problems


class AccessQuery(Strict):
    resource: ResourceKey | None = None
    principal: PrincipalKey | None = None
    action: column_text(Decision.action) | None = None  # type: ignore[valid-type]  # with both: why (not)
    cursor: Cursor | None = None  # of the principal's grants


@bp.get("/access")
def access_explorer():
    authorize("explain_access")
    snapshot = get_engine().snapshot()
    typed = {key: value.strip() for key, value in request.args.items() if value.strip()}
    q, found_problems = problems(AccessQuery, typed)
    if q is None:  # each field that would not do, said beside it, the rest kept as typed
        return _form_again(typed, found_problems, snapshot.revision, 400)
    unknown = {field: f"{key} is not in the directory; check the spelling (keys look like {EXAMPLES[field]})."
               for field, key, known in (("resource", q.resource, snapshot.index.resources),
                                         ("principal", q.principal, None)) if key and not _exists(key, known)}
    if unknown:
        return _form_again(typed, unknown, snapshot.revision, 404)
    now, deadline = clock_now(), Deadline(current_app.config["EVALUATION_TIMEOUT"])
    found: dict[str, Any] = {"revision": snapshot.revision}
    if q.resource:
        found["resource"] = directory.get_resource(get_session(), q.resource)
        found["access"] = snapshot.evaluator.access(q.resource, now, deadline)
    if q.principal:
        found["principal"] = directory.get_principal(get_session(), q.principal)
        found["grants"] = directory.list_grants(get_session(), principal=q.principal, resource=None, role=None,
                                                source=None, cursor=q.cursor, limit=page_limit(None)).to_dict()
    if q.resource and q.principal and q.action:
        found["explained"] = snapshot.evaluator.explain(q.principal, q.action, q.resource, now)
    return render_template("access.html", query=q, typed=typed, problems={}, **found)


def _exists(key: str, known) -> bool:
    if known is not None:
        return key in known
    return get_session().get(Principal, key) is not None


def _form_again(typed: dict[str, str], found: dict[str, str], revision: int, status: int):
    shown = {key: value.replace("\x00", "") for key, value in typed.items()}  # never a NUL into the page
    return render_template("access.html", query=AccessQuery(), typed=shown, problems=found,
                           revision=revision), status


@bp.app_template_filter("why")
def _why(reason: dict[str, Any]) -> str:
    """One reason of an explanation as a sentence or two."""
    code = reason.get("code")
    via = reason.get("via_groups") or []
    through = f" (through {' → '.join(via)})" if via else ""
    if code == "granted":
        chain = reason.get("chain") or []
        steps = "; ".join(f"{', '.join(step['roles'])} on {step['resource']}" for step in chain)
        return (f"Grant {reason['grant_id']} makes {reason['principal']}{through} {reason['role']} on "
                f"{reason['resource']}, which gives {reason['permission']}"
                + (f" ({steps})." if len(chain) > 1 else "."))
    if code == "role_insufficient":
        gives = ", ".join(reason.get("gives") or []) or "nothing"
        return (f"Grant {reason['grant_id']} makes {reason['principal']}{through} {reason['role']} on "
                f"{reason['resource']}, which gives {gives}, not what was asked.")
    if code == "grant_expired":
        return (f"Grant {reason['grant_id']} ({reason['role']} on {reason['resource']}{through}) would allow it, "
                f"but it expired {_when(reason.get('expired_at'))}.")
    if code == "no_grant":
        would = reason.get("roles_that_would_allow") or {}
        roles = "; ".join(f"{' or '.join(names)} on {key}" for key, names in would.items() if names)
        return (f"{_sentence(reason['message'])}." + (f" A grant of {roles} would allow it." if roles else "")
                + f" Checked {', '.join(reason.get('checked') or [])}.")
    return _sentence(reason.get("message") or str(code).replace("_", " ")) + "."


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".")
