"""Response shapes, for the OpenAPI document (handlers build plain dicts of these shapes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class PrincipalOut(BaseModel):
    id: str
    kind: Literal["user", "group", "service"]
    name: str | None = None
    email: str | None = None
    department: str | None = None
    manager: str | None = None
    status: Literal["active", "disabled"] | None = None
    last_seen_at: str | None = None
    members: list[str] | None = None
    groups: list[str] | None = None


class ResourceOut(BaseModel):
    id: str
    type: str
    name: str | None
    parent: str | None
    owner: str | None
    attributes: dict[str, Any]


class GrantOut(BaseModel):
    id: int
    principal: str
    role: str
    resource: str
    granted_by: str | None
    granted_at: str
    reason: str | None
    expires_at: str | None
    source: str


class WithRevision(BaseModel):
    revision: int


class PrincipalWritten(WithRevision):
    principal: PrincipalOut


class ResourceWritten(WithRevision):
    resource: ResourceOut


class GrantCreated(WithRevision):
    id: int
    grant: GrantOut


class PrincipalPage(BaseModel):
    items: list[PrincipalOut]
    next_cursor: str | None


class ResourcePage(BaseModel):
    items: list[ResourceOut]
    next_cursor: str | None


class GrantPage(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None


class ImportResult(BaseModel):
    dry_run: bool
    mode: Literal["merge", "replace"]
    source: str
    revision: int  # the last revision the import wrote (a dry run: the directory's)
    first_revision: int | None = None  # the first, when it was applied in batches
    counts: dict[str, dict[str, int]]
    diff: dict[str, dict[str, list[Any]]] | None  # None when over 10,000 changes: counts only
    job: dict[str, Any] | None = None  # the import's job (none for a dry run)


class JobAccepted(BaseModel):
    job: dict[str, Any]


class SourceStatus(BaseModel):
    source: str
    last_sync_at: str
    last_mode: str
    age_seconds: int
    last_full_sync_at: str | None
    full_sync_age_seconds: int | None
    revision: int


class DirectoryStatus(BaseModel):
    revision: int
    counts: dict[str, Any]
    sources: list[SourceStatus]


class AuditEventOut(BaseModel):
    id: str
    seq: int
    occurred_at: str
    actor: str
    action: str
    target: str | None
    before: Any
    after: Any
    request_id: str | None
    prev_hash: str
    hash: str


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] | None = None


class AuthorizeOut(BaseModel):
    allowed: bool
    decision_id: str
    policy_version: str
    revision: int


class BatchResult(BaseModel):
    allowed: bool
    decision_id: str


class BatchOut(BaseModel):
    results: list[BatchResult]
    policy_version: str
    revision: int


class KeyPage(BaseModel):
    items: list[str]
    next_cursor: str | None
    revision: int


class Via(BaseModel):
    grant_id: int
    principal: str
    role: str
    resource: str


class AccessEntry(BaseModel):
    principal: str
    permissions: list[str]
    via: list[Via]


class AccessPage(BaseModel):
    items: list[AccessEntry]
    next_cursor: str | None
    revision: int


class ExplainOut(BaseModel):
    allowed: bool
    reasons: list[dict[str, Any]]
    policy_version: str
    revision: int


class DecisionOut(BaseModel):
    id: str
    decided_at: str
    caller: str
    actor: str
    action: str
    resource: str
    allowed: bool
    policy_version: str
    revision: int
    latency_us: int
    grant_ids: list[int]
    # The SHA-256 of the properties and context the check's request gave (canonical JSON), or null.
    properties_sha256: str | None


class DecisionPage(BaseModel):
    items: list[DecisionOut]
    next_cursor: str | None


class PolicyOut(BaseModel):
    version: str
    files: list[str]
    evaluation: Literal["compiled", "oso"]
    compiled_types: dict[str, Any]
    fallback_types: dict[str, str]
    fallback_actor_kinds: dict[str, str]
    # Types whose rules read attributes: decided by oso with the request's properties (also when the
    # directory does not hold the resource).
    attribute_types: list[str]
    last_reload_error: str | None


class JobProgress(BaseModel):
    done: int
    total: int | None


class JobOut(BaseModel):
    id: int
    kind: str
    subject: str | None
    state: Literal["queued", "running", "done", "failed"]
    phase: str
    progress: JobProgress
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    attempts: int
    created_by: str
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    links: dict[str, str]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class AuthzenConfigurationOut(BaseModel):
    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
    search_subject_endpoint: str
    search_resource_endpoint: str
    search_action_endpoint: str


class AuthzenItemError(BaseModel):
    status: int
    code: str
    message: str
    field: str | None = None
    errors: list[ErrorDetail] | None = None


class AuthzenDecisionContext(BaseModel):
    decision_id: str | None = None
    policy_version: str | None = None
    revision: int | None = None
    reasons: list[dict[str, Any]] | None = None
    error: AuthzenItemError | None = None


class AuthzenDecisionOut(BaseModel):
    decision: bool
    context: AuthzenDecisionContext | None = None


class AuthzenEvaluationsOut(BaseModel):
    evaluations: list[AuthzenDecisionOut]


class AuthzenPage(BaseModel):
    next_token: str
    count: int
    total: int


class AuthzenEntity(BaseModel):
    type: str
    id: str


class AuthzenEntityPage(BaseModel):
    page: AuthzenPage
    results: list[AuthzenEntity]


class AuthzenAction(BaseModel):
    name: str


class AuthzenActionPage(BaseModel):
    page: AuthzenPage
    results: list[AuthzenAction]
