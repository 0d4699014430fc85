"""/v1/policy: the loaded policy, its compiled table, and reloading it in every process."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ..authz.engine import Snapshot, get_engine
from ..authz.policy import PolicyLoadError
from ..errors import Unprocessable
from ..guard import authorize, unit_of_work
from . import shapes
from .common import answer, documented

bp = Blueprint("policy", __name__, url_prefix="/v1")


def policy_summary(snapshot: Snapshot) -> dict[str, Any]:
    model = snapshot.model
    return {
        "version": snapshot.policy.version,
        "files": [f.name for f in snapshot.policy.files],
        "evaluation": "oso" if snapshot.evaluator.force_oso else "compiled",
        "compiled_types": {key: {"chain": list(t.chain), "grants": [
            {"depth": depth, "role": role, "permissions": sorted(perms)}
            for (depth, role), perms in sorted(t.permissions.items())]} for key, t in sorted(model.types.items())},
        "fallback_types": model.fallback_types,
        "fallback_actor_kinds": model.fallback_actor_kinds,
        "last_reload_error": get_engine().last_reload_error,
    }


@bp.get("/policy")
@documented("The loaded policy: version, files, the role table compiled from it, types left to oso",
            tag="policy", responses={200: shapes.PolicyOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut})
def show_policy():
    authorize("read_directory")
    return answer(policy_summary(get_engine().snapshot()))


@bp.post("/policy/reload")
@documented("Validate the policy files on disk and swap them in, in every process (audited)", tag="policy",
            responses={200: shapes.PolicyOut, 422: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut})
def reload_policy():
    actor = authorize("reload_policy")
    engine = get_engine()
    try:
        with unit_of_work(actor) as (session, ctx):
            engine.reload_policy(session, ctx)
    except PolicyLoadError as exc:
        raise Unprocessable(f"the policy on disk does not load; the current one stays: {exc}",
                            code="policy_invalid", field=None) from None
    return answer(policy_summary(engine.refresh()))
