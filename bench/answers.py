"""What answering through the documented model costs (``accessreview.api.common.answer``): a page of
review items at the largest page size, encoded as the views did before (json.dumps of the dict,
sorted keys, as Flask's jsonify) and as they do now (validated by the model, encoded by pydantic).

Target: the largest page still well under the ~1 s a request may take; the portal's checks do not
pass through here (the hot path and the check server build their own typed answers).

    .venv/bin/python bench/answers.py [--items 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from accessreview.api import shapes


def review_item(number: int) -> dict:
    return {
        "id": number, "campaign_id": 1, "kind": "grant", "grant_id": number,
        "principal": {"id": f"user:u{number}", "kind": "user", "name": f"User {number}", "email": f"u{number}@x.test",
                      "department": "Tax", "status": "active", "manager": "user:boss"},
        "role": "viewer", "resource": {"id": f"project:p{number}", "type": "project", "name": "A project",
                                       "owner": "user:owner"},
        "grant": {"id": number, "granted_by": "user:admin", "granted_at": "2026-01-01T00:00:00+00:00",
                  "reason": "onboarding", "expires_at": None, "source": "portal"},
        "members": None, "effective_permissions": {"project": ["read"], "document": ["read", "download"]},
        "explanation": [{"grant_id": number, "role": "viewer", "resource": f"project:p{number}"}],
        "last_used_at": "2026-02-01T00:00:00+00:00", "recommendation": "keep",
        "recommendation_reason": "used within 90 days", "recommendation_confidence": "complete", "stage": 0,
        "reviewer_of_record": "user:owner", "reviewer": "user:owner", "assignment_note": None, "status": "pending",
        "decision": None, "justification": None, "decided_by": None, "decided_at": None, "automated_rule": None,
        "overridden": False, "escalated_at": None, "remediation_state": None, "remediation_detail": None,
        "applied_at": None, "verified_at": None, "version": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    page = {"items": [review_item(n) for n in range(args.items)], "next_cursor": None}
    model = shapes.ReviewItemPage
    ways = {
        "json.dumps (before)": lambda: json.dumps(page, sort_keys=True, separators=(",", ":")),
        "through the model (now)": lambda: model.model_validate(page, strict=False).model_dump_json(exclude_unset=True),
    }
    medians = {}
    for name, encode in ways.items():
        encode()
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            encode()
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
        print(f"{name:<26} {medians[name] * 1000:8.1f} ms per page of {args.items} review items")
    before, now = medians.values()
    print(f"ratio now/before: {now / before:.2f}")


if __name__ == "__main__":
    main()
