"""/v1 directory endpoints: principals, resources, grants, bulk import, status."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, current_app, url_for
from pydantic import BaseModel

from ..authz.engine import get_engine
from ..db import get_session
from ..directory import imports, service
from ..directory.schemas import GrantBody, ImportPayload, PrincipalBody, ResourceBody
from ..guard import authorize, body, clock_now, page_limit, query, unit_of_work, write_context
from ..models import Grant, Resource
from ..pagination import Cursor
from ..validation import column_text
from . import shapes
from .keys import principal_key, resource_key
from .common import answer, documented

bp = Blueprint("directory", __name__, url_prefix="/v1")

ERRORS = {400: shapes.ErrorOut, 401: shapes.ErrorOut, 403: shapes.ErrorOut}


class PrincipalQuery(BaseModel):
    type: Literal["user", "group", "service"] | None = None
    status: Literal["active", "disabled"] | None = None
    cursor: Cursor | None = None
    limit: int | None = None


class ResourceQuery(BaseModel):
    type: column_text(Resource.type) | None = None  # type: ignore[valid-type]
    parent: column_text(Resource.parent_key) | None = None  # type: ignore[valid-type]
    cursor: Cursor | None = None
    limit: int | None = None


class GrantQuery(BaseModel):
    principal: column_text(Grant.principal_key) | None = None  # type: ignore[valid-type]
    resource: column_text(Grant.resource_key) | None = None  # type: ignore[valid-type]
    role: column_text(Grant.role) | None = None  # type: ignore[valid-type]
    source: column_text(Grant.source) | None = None  # type: ignore[valid-type]
    cursor: Cursor | None = None
    limit: int | None = None


@bp.put("/principals/<principal>")
@documented("Create or replace a principal (user, group or service)", body=PrincipalBody, tag="directory",
            responses={200: shapes.PrincipalWritten, 201: shapes.PrincipalWritten, 409: shapes.ErrorOut,
                       422: shapes.ErrorOut, **ERRORS})
def put_principal(principal: str):
    actor = authorize("sync_directory")
    key, data = principal_key(principal), body(PrincipalBody)
    with unit_of_work(actor) as (session, ctx):
        state, revision, created = service.put_principal(session, ctx, get_engine().policy.declarations, key, data)
    return answer({"principal": state, "revision": revision}, 201 if created else 200)


@bp.get("/principals/<principal>")
@documented("One principal, with its group memberships", tag="directory",
            responses={200: shapes.PrincipalOut, 404: shapes.ErrorOut, **ERRORS})
def get_principal(principal: str):
    authorize("read_directory")
    return answer(service.get_principal(get_session(), principal_key(principal)))


@bp.get("/principals")
@documented("Principals, filtered by type and status, cursor-paginated", query=PrincipalQuery, tag="directory",
            responses={200: shapes.PrincipalPage, **ERRORS})
def list_principals():
    authorize("read_directory")
    q = query(PrincipalQuery)
    page = service.list_principals(get_session(), kind=q.type, status=q.status, cursor=q.cursor,
                                   limit=page_limit(q.limit))
    return answer(page.to_dict())


@bp.put("/resources/<type_>/<id_>")
@documented("Create or replace a resource", body=ResourceBody, tag="directory",
            responses={200: shapes.ResourceWritten, 201: shapes.ResourceWritten, 422: shapes.ErrorOut, **ERRORS})
def put_resource(type_: str, id_: str):
    actor = authorize("sync_directory")
    key, data = resource_key(type_, id_), body(ResourceBody)
    with unit_of_work(actor) as (session, ctx):
        state, revision, created = service.put_resource(session, ctx, get_engine().policy.declarations, key, data)
    return answer({"resource": state, "revision": revision}, 201 if created else 200)


@bp.get("/resources/<type_>/<id_>")
@documented("One resource", tag="directory", responses={200: shapes.ResourceOut, 404: shapes.ErrorOut, **ERRORS})
def get_resource(type_: str, id_: str):
    authorize("read_directory")
    return answer(service.get_resource(get_session(), resource_key(type_, id_)))


@bp.get("/resources")
@documented("Resources, filtered by type and parent, cursor-paginated", query=ResourceQuery,
            tag="directory", responses={200: shapes.ResourcePage, **ERRORS})
def list_resources():
    authorize("read_directory")
    q = query(ResourceQuery)
    page = service.list_resources(get_session(), type_=q.type, parent=q.parent, cursor=q.cursor,
                                  limit=page_limit(q.limit))
    return answer(page.to_dict())


@bp.post("/grants")
@documented("Grant a role on a resource to a principal", body=GrantBody, tag="directory",
            responses={201: shapes.GrantCreated, 409: shapes.ErrorOut, 422: shapes.ErrorOut, **ERRORS})
def create_grant():
    actor = authorize("sync_directory")
    data = body(GrantBody)
    with unit_of_work(actor) as (session, ctx):
        grant, revision = service.create_grant(session, ctx, get_engine().policy.declarations, data)
    response = answer({"id": grant["id"], "revision": revision, "grant": grant}, 201)
    response.headers["Location"] = url_for("directory.get_grant", grant_id=grant["id"])
    return response


@bp.get("/grants/<int:grant_id>")
@documented("One grant", tag="directory", responses={200: shapes.GrantOut, 404: shapes.ErrorOut, **ERRORS})
def get_grant(grant_id: int):
    authorize("read_directory")
    return answer(service.get_grant(get_session(), grant_id))


@bp.delete("/grants/<int:grant_id>")
@documented("Remove a grant", tag="directory",
            responses={200: shapes.WithRevision, 404: shapes.ErrorOut, **ERRORS})
def delete_grant(grant_id: int):
    actor = authorize("sync_directory")
    with unit_of_work(actor) as (session, ctx):
        revision = service.delete_grant(session, ctx, grant_id)
    return answer({"revision": revision})


@bp.get("/grants")
@documented("Grants, filtered by principal, resource, role or source, cursor-paginated", query=GrantQuery,
            tag="directory", responses={200: shapes.GrantPage, **ERRORS})
def list_grants():
    authorize("read_directory")
    q = query(GrantQuery)
    page = service.list_grants(get_session(), principal=q.principal, resource=q.resource, role=q.role,
                               source=q.source, cursor=q.cursor, limit=page_limit(q.limit))
    return answer(page.to_dict())


@bp.post("/directory/import")
@documented("Bulk sync: every row is checked before any is written; dry_run returns the diff; replace removes "
            "the source's missing grants. Up to 1,000 rows: applied at once, one revision (200). More: 202 with "
            "the import's job, which applies them in batches", body=ImportPayload, tag="directory",
            responses={200: shapes.ImportResult, 202: shapes.JobAccepted, 409: shapes.ErrorOut,
                       422: shapes.ErrorOut, 413: shapes.ErrorOut, 500: shapes.ErrorOut, **ERRORS})
def import_directory():
    actor = authorize("sync_directory")
    payload = body(ImportPayload)
    outcome = imports.run_import(current_app, write_context(actor), payload)
    if outcome.done:
        return answer({**outcome.result, "job": outcome.job})
    response = answer({"job": outcome.job}, 202)
    response.headers["Location"] = outcome.job["links"]["self"]
    return response


@bp.get("/directory/status")
@documented("Revision, counts, and the last sync of each source with its age", tag="directory",
            responses={200: shapes.DirectoryStatus, **ERRORS})
def directory_status():
    authorize("read_directory")
    return answer(service.directory_status(get_session(), clock_now()))
