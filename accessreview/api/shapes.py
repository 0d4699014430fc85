"""Response shapes: the models /openapi.json documents and the views answer through
(``api.common.answer``), so the document and the answers have one source.

An answer's fields are exactly its model's (``extra="forbid"``, shown as ``additionalProperties:
false``); only genuinely open maps (a resource's attributes, a job's parameters, an audit event's
before and after) are free-form.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel

from ..campaigns.schemas import (Escalation, Justification, Recommendation, Reminders, ReviewerRule, Schedule,
                                 Scope, HoldSettings, SignOffSettings)


class Out(BaseModel):
    """An answer: no field beyond those declared."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """The error; some carry details beside the three fields (a running job, each refused row)."""

    code: str
    message: str
    field: str | None = None


class ErrorOut(Out):
    error: ErrorDetail


class PrincipalOut(Out):
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
    attributes: dict[str, Any] | None = None  # a user's or service's; a group has none


class ResourceOut(Out):
    id: str
    type: str
    name: str | None
    parent: str | None
    owner: str | None
    attributes: dict[str, Any]


class GrantOut(Out):
    id: int
    principal: str
    role: str
    resource: str
    granted_by: str | None
    granted_at: str
    reason: str | None
    expires_at: str | None
    source: str


class WithRevision(Out):
    revision: int


class PrincipalWritten(WithRevision):
    principal: PrincipalOut


class ResourceWritten(WithRevision):
    resource: ResourceOut


class GrantCreated(WithRevision):
    id: int
    grant: GrantOut


class PrincipalPage(Out):
    items: list[PrincipalOut]
    next_cursor: str | None


class ResourcePage(Out):
    items: list[ResourceOut]
    next_cursor: str | None


class GrantPage(Out):
    items: list[GrantOut]
    next_cursor: str | None


class HoldRef(Out):
    id: int
    campaign: int
    item: int


class HeldRow(Out):
    """A row an import left out because a review's revocation holds against it."""

    principal: str
    role: str
    resource: str
    hold: HoldRef


class ImportResult(Out):
    dry_run: bool
    mode: Literal["merge", "replace"]
    source: str
    revision: int  # the last revision the import wrote (a dry run: the directory's)
    first_revision: int | None = None  # the first, when it was applied in batches
    counts: dict[str, dict[str, int]]
    held: list[HeldRow]
    diff: dict[str, dict[str, list[Any]]] | None  # None when over 10,000 changes: counts only
    job: JobOut | None = None  # the import's job (none for a dry run)


class JobAccepted(Out):
    job: JobOut


class SourceStatus(Out):
    source: str
    last_sync_at: str
    last_mode: str
    age_seconds: int
    last_full_sync_at: str | None
    full_sync_age_seconds: int | None
    revision: int


class DirectoryCounts(Out):
    principals: dict[str, int]  # per kind
    resources: dict[str, int]  # per type
    grants: int
    expired_grants: int
    active_holds: int


class DirectoryStatus(Out):
    revision: int
    counts: DirectoryCounts
    sources: list[SourceStatus]


class AuditEventOut(Out):
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


class AuditEventPage(Out):
    items: list[AuditEventOut]
    next_cursor: str | None


class Health(Out):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] | None = None


class AuthorizeOut(Out):
    allowed: bool
    decision_id: str
    policy_version: str
    revision: int


class BatchResult(Out):
    allowed: bool
    decision_id: str


class BatchOut(Out):
    results: list[BatchResult]
    policy_version: str
    revision: int


class KeyPage(Out):
    items: list[str]
    next_cursor: str | None
    revision: int


class Via(Out):
    grant_id: int
    principal: str
    role: str
    resource: str


class AccessEntry(Out):
    principal: str
    permissions: list[str]
    via: list[Via]


class AccessPage(Out):
    items: list[AccessEntry]
    next_cursor: str | None
    revision: int


class ExplainOut(Out):
    allowed: bool
    reasons: list[dict[str, Any]]
    policy_version: str
    revision: int


class DecisionOut(Out):
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


class DecisionPage(Out):
    items: list[DecisionOut]
    next_cursor: str | None


class CompiledGrant(Out):
    depth: int  # 0: a role on the resource itself; 1: on its parent; ...
    role: str
    permissions: list[str]


class CompiledType(Out):
    chain: list[str]  # the resource type and its ancestors' types
    grants: list[CompiledGrant]


class PolicyOut(Out):
    version: str
    files: list[str]
    evaluation: Literal["compiled", "oso"]
    compiled_types: dict[str, CompiledType]
    fallback_types: dict[str, str]
    fallback_actor_kinds: dict[str, str]
    # Types whose rules read attributes: decided by oso with the request's properties (also when the
    # directory does not hold the resource).
    attribute_types: list[str]
    last_reload_error: str | None


class JobProgress(Out):
    done: int
    total: int | None


class JobOut(Out):
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


class JobPage(Out):
    items: list[JobOut]
    next_cursor: str | None


class AuthzenConfigurationOut(Out):
    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
    search_subject_endpoint: str
    search_resource_endpoint: str
    search_action_endpoint: str


class AuthzenItemError(BaseModel):  # as ErrorDetail: some errors carry details
    status: int
    code: str
    message: str
    field: str | None = None
    errors: list[ErrorDetail] | None = None


class AuthzenDecisionContext(BaseModel):  # the spec's context is an open object; these are ours
    decision_id: str | None = None
    policy_version: str | None = None
    revision: int | None = None
    reasons: list[dict[str, Any]] | None = None
    error: AuthzenItemError | None = None


class AuthzenDecisionOut(Out):
    decision: bool
    context: AuthzenDecisionContext | None = None


class AuthzenEvaluationsOut(Out):
    evaluations: list[AuthzenDecisionOut]


class AuthzenEvaluationsAnswer(RootModel[AuthzenEvaluationsOut | AuthzenDecisionOut]):
    """Answers in order; a request without items is one evaluation, answered as one (as the spec says)."""


class AuthzenPage(Out):
    next_token: str
    count: int
    total: int | None = None  # absent where counting would mean evaluating every candidate


class AuthzenEntity(Out):
    type: str
    id: str


class AuthzenEntityPage(Out):
    page: AuthzenPage
    results: list[AuthzenEntity]


class AuthzenAction(Out):
    name: str


class AuthzenActionPage(Out):
    page: AuthzenPage
    results: list[AuthzenAction]


# -- campaigns --------------------------------------------------------------------------------------

class DefinitionOut(Out):
    """A campaign definition: its settings in the shapes they were given in (DefinitionBody's parts)."""

    id: int
    name: str
    description: str | None
    scope: Scope
    reviewer: ReviewerRule
    stages: list[ReviewerRule]
    fallback_reviewer: str
    duration_days: int
    reminders: Reminders
    escalation: Escalation | None
    on_no_response: Literal["keep", "revoke", "recommendation"]
    on_no_response_fallback: Literal["keep", "revoke"]
    justification: Justification
    recommendation: Recommendation
    schedule: Schedule | None
    holds: HoldSettings
    sign_off: SignOffSettings
    enabled: bool
    created_by: str
    created_at: str
    updated_at: str


class DefinitionList(Out):
    items: list[DefinitionOut]


class ReportOut(Out):
    id: int
    kind: Literal["campaign", "access", "decisions"]
    campaign: int | None
    stage: str
    version: int
    file_name: str
    sha256: str
    size: int
    key_id: str
    created_at: str
    created_by: str
    parameters: dict[str, Any]  # what the report was asked for, per kind
    raw_signature: bool


class SourceAtLaunch(Out):
    last_sync_at: str
    age_hours: float
    mode: str


class Freshness(Out):
    """The directory's sources as they were at launch, and those older than allowed."""

    sources: dict[str, SourceAtLaunch]
    stale_sources: list[str]
    max_age_hours: float
    flagged: bool | None = None  # with stale sources: launched anyway, flagged (else it was refused)


class CampaignOut(Out):
    id: int
    definition_id: int
    period: str
    name: str
    status: Literal["launching", "open", "closing", "closed", "signed_off"]
    launched_by: str
    launched_at: str
    due_at: str
    closed_at: str | None
    revision: int
    policy_version: str
    population_count: int
    population_hash: str
    freshness: Freshness
    signed_off_by: str | None
    signed_off_at: str | None
    sign_off_statement: str | None
    # The definition as it was at launch (DefinitionOut's fields; a campaign launched before a setting
    # existed lacks it, so it is not held to today's model).
    settings: dict[str, Any]
    items: dict[str, int] | None  # items per status, where counted
    follow_up: dict[str, Any] | None  # access that came back, found after the follow-up days


class CampaignWorked(CampaignOut):
    """A campaign whose long work finished within the request, with its job and what the job made."""

    job: JobOut | None
    remediation: dict[str, Any] | None = None  # what the remediation did, when it ran
    reports: list[ReportOut] | None = None


class CampaignAccepted(Out):
    """Long work on a campaign left to the worker: its job (also in Location) and the campaign so far."""

    job: JobOut
    campaign: CampaignOut | None


class CampaignList(Out):
    items: list[CampaignOut]


class BulkDecided(Out):
    decided: int
    campaign: CampaignOut


class NoResponseRule(Out):
    rule: str
    keep: int
    revoke: int


class DecidedCounts(Out):
    keep: int
    revoke: int


class PreviewItem(Out):
    id: int
    principal: str
    role: str | None
    resource: str
    reviewer: str | None
    recommendation: Literal["keep", "revoke", "review"]
    recommendation_reason: str
    recommendation_confidence: str
    decision: Literal["keep", "revoke"]
    rule: str
    why: str


class ClosePreview(Out):
    """What closing now would do; nothing changed."""

    campaign: int
    dry_run: Literal[True]
    status: str
    on_no_response: Literal["keep", "revoke", "recommendation"]
    on_no_response_fallback: Literal["keep", "revoke"]
    pending: int
    keep: int
    revoke: int
    rules: list[NoResponseRule]
    already_decided: DecidedCounts
    items: list[PreviewItem]
    next_cursor: str | None


class CloseAnswer(RootModel[CampaignWorked | ClosePreview]):
    """A close done within the request (the campaign), or with dry_run, what it would do."""


class Corrections(Out):
    decisions_changed: int
    remediation_failures: int


class CampaignMeasures(Out):
    campaign: int
    status: str
    items: int
    decided: int
    decided_percent: float
    keep: int
    revoke: int
    automated: int
    automated_keep: int
    automated_revoke: int
    kept_total: int
    revoked_total: int
    overridden: int
    overdue: int
    escalated: int
    median_hours_to_decision: float | None
    cycle_hours: float | None
    reviewers: int
    reviewer_completion_percent: float
    corrections: Corrections
    remediation: dict[str, int]  # items per remediation state, those with any
    access_removed: int


class ReviewMeasures(Out):
    campaigns: int
    open: int
    items: int
    decided: int
    keep: int
    revoke: int
    automated: int
    overdue: int
    escalated: int
    access_removed: int
    decisions_changed: int
    remediation_failures: int
    median_cycle_hours: float | None
    per_campaign: list[CampaignMeasures]


# -- review items -----------------------------------------------------------------------------------

class FrozenPrincipal(Out):
    """The reviewed principal as it was at launch."""

    id: str
    kind: Literal["user", "group", "service"] | None = None
    name: str | None = None
    email: str | None = None
    department: str | None = None
    status: Literal["active", "disabled"] | None = None
    manager: str | None = None


class FrozenResource(Out):
    """The resource (for a membership: the group) as it was at launch."""

    id: str
    type: str | None = None
    name: str | None = None
    owner: str | None = None


class FrozenGrant(Out):
    id: int
    granted_by: str | None
    granted_at: str
    reason: str | None
    expires_at: str | None
    source: str


class FrozenMember(Out):
    id: str
    name: str | None
    status: Literal["active", "disabled"] | None


class ReviewItemOut(Out):
    id: int
    campaign_id: int
    kind: Literal["grant", "membership"]
    grant_id: int | None
    principal: FrozenPrincipal
    role: str | None
    resource: FrozenResource
    grant: FrozenGrant | None  # the grant as it was at launch
    members: list[FrozenMember] | None  # a reviewed group's members at launch
    effective_permissions: dict[str, list[str]]  # per resource type, the permissions the grant gives
    explanation: list[Any]
    last_used_at: str | None
    recommendation: Literal["keep", "revoke", "review"]
    recommendation_reason: str
    recommendation_confidence: str
    stage: int
    reviewer_of_record: str | None
    reviewer: str | None
    assignment_note: str | None
    status: Literal["pending", "decided"]
    decision: Literal["keep", "revoke"] | None
    justification: str | None
    decided_by: str | None
    decided_at: str | None
    automated_rule: str | None
    overridden: bool
    escalated_at: str | None
    remediation_state: str | None
    remediation_detail: str | None
    applied_at: str | None
    verified_at: str | None
    version: int


class ItemEvent(BaseModel):
    """One event in an item's history; each kind adds its own details (from, to, reason...)."""

    model_config = ConfigDict(extra="allow")

    occurred_at: str
    actor: str
    kind: str
    stage: int


class ReviewItemWithHistory(ReviewItemOut):
    history: list[ItemEvent]


class ReviewItemPage(Out):
    items: list[ReviewItemOut]
    next_cursor: str | None


# -- reports ----------------------------------------------------------------------------------------

class ReportList(Out):
    items: list[ReportOut]


class SignatureDocument(Out):
    """A report's detached signature: its signed claims, the signature and the public key."""

    format: str
    algorithm: Literal["Ed25519"]
    file: str
    kind: str
    sha256: str
    campaign: int | None
    stage: str | None = None  # signed too; absent from files signed before the stage was claimed
    signed_at: str
    key_id: str
    signature: str
    public_key: str


class VerificationOut(Out):
    valid: bool
    status: Literal["valid", "invalid", "untrusted"]
    reason: str
    campaign: int | None
    kind: str | None
    stage: str | None  # sign_off, remediation, follow_up, ad_hoc; None for files signed before it was claimed
    signed_at: str | None
    key_id: str | None
    fingerprint: str | None
    sha256: str | None
    file: str | None
    raw_signature: bool


class SigningKeyOut(Out):
    key_id: str
    algorithm: Literal["Ed25519"]
    public_key: str
    fingerprint: str
    first_used_at: str | None  # none for the current key before it signed anything


class SigningKeys(Out):
    items: list[SigningKeyOut]
    current: str
    current_fingerprint: str
