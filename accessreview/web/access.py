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
from ..errors import BadRequest, NotFound
from ..guard import authorize, clock_now, page_limit
from ..models import Decision
from ..pagination import Cursor
from ..validation import Strict, column_text, parse_query
from .blueprint import bp


class AccessQuery(Strict):
    resource: ResourceKey | None = None
    principal: PrincipalKey | None = None
    action: column_text(Decision.action) | None = None  # type: ignore[valid-type]  # with both: why (not)
    cursor: Cursor | None = None  # of the principal's grants


@bp.get("/access")
def access_explorer():
    authorize("explain_access")
    try:
        q = parse_query(AccessQuery, {key: value.strip() for key, value in request.args.items() if value.strip()})
    except BadRequest as error:  # said above the form, as the API would refuse it
        return render_template("access.html", query=AccessQuery(), revision=get_engine().snapshot().revision,
                               error=error), error.status
    snapshot = get_engine().snapshot()
    now, deadline = clock_now(), Deadline(current_app.config["EVALUATION_TIMEOUT"])
    found: dict[str, Any] = {"revision": snapshot.revision}
    if q.resource:
        if q.resource not in snapshot.index.resources:
            raise NotFound(f"{q.resource} is not in the directory", field="resource")
        found["resource"] = directory.get_resource(get_session(), q.resource)
        found["access"] = snapshot.evaluator.access(q.resource, now, deadline)
    if q.principal:
        found["principal"] = directory.get_principal(get_session(), q.principal)
        found["grants"] = directory.list_grants(get_session(), principal=q.principal, resource=None, role=None,
                                                source=None, cursor=q.cursor, limit=page_limit(None)).to_dict()
    if q.resource and q.principal and q.action:
        found["explained"] = snapshot.evaluator.explain(q.principal, q.action, q.resource, now)
    return render_template("access.html", query=q, error=None, **found)
