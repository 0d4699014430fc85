"""The service's tables, as typed SQLAlchemy 2.x models. Alembic migrations create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .clock import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else as_utc(value)

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


PRINCIPAL_KINDS = ("user", "group", "service")
PRINCIPAL_STATUSES = ("active", "disabled")


class Principal(Base):
    """Who acts: ``user:<id>``, ``group:<id>`` or ``service:<id>``; the key is that whole string."""

    __tablename__ = "principals"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    department: Mapped[str | None] = mapped_column(String(255))
    manager_key: Mapped[str | None] = mapped_column(ForeignKey("principals.key"), index=True)
    # The directory's custom attributes of a user or service (a clearance, a team), for attribute rules.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class GroupMembership(Base):
    __tablename__ = "group_memberships"

    group_key: Mapped[str] = mapped_column(ForeignKey("principals.key"), primary_key=True)
    member_key: Mapped[str] = mapped_column(ForeignKey("principals.key"), primary_key=True, index=True)


class Resource(Base):
    """What is acted on, ``<type>:<id>``; the parent chain forms the resource tree."""

    __tablename__ = "resources"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    parent_key: Mapped[str | None] = mapped_column(ForeignKey("resources.key"), index=True)
    owner_key: Mapped[str | None] = mapped_column(ForeignKey("principals.key"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Grant(Base):
    """One fact: principal holds role on resource, with who granted it, when, why and until when."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("principal_key", "role", "resource_key", name="uq_grants_principal_role_resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal_key: Mapped[str] = mapped_column(ForeignKey("principals.key"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    resource_key: Mapped[str] = mapped_column(ForeignKey("resources.key"), index=True)
    granted_by: Mapped[str | None] = mapped_column(String(255))
    granted_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(64), index=True)


class DirectoryState(Base):
    """A single row: the directory revision and the head of the audit chain.

    Every write locks this row first, which serializes writers: the revision rises by one per
    change and the audit chain never forks, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "directory_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_head: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str | None] = mapped_column(String(64))


class SourceSync(Base):
    """The last import of each source, and its last full ("replace") sync, for freshness checks."""

    __tablename__ = "source_syncs"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sync_at: Mapped[datetime]
    last_full_sync_at: Mapped[datetime | None]
    last_revision: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(16))


class AuditEvent(Base):
    """Append-only and hash-chained: ``hash`` covers the content and ``prev_hash``."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(255), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# What a token is for (ServiceToken.purpose).
API_TOKEN, WEB_SESSION, SIGN_IN_LINK = "api", "web_session", "sign_in_link"


class ServiceToken(Base):
    """A bearer token; only a keyed hash of the secret is stored."""

    __tablename__ = "service_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_key: Mapped[str] = mapped_column(ForeignKey("principals.key"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    # API_TOKEN or WEB_SESSION: a bearer token; SIGN_IN_LINK: good only for redeeming its link, once.
    purpose: Mapped[str] = mapped_column(String(16), default=API_TOKEN, server_default=API_TOKEN)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]  # when a sign-in link was redeemed
    # Written by the decision log's writer, at most once a minute per token per process: a service's
    # grants on the service itself are used by calling it, which no check in the log shows.
    last_used_at: Mapped[datetime | None]

    principal: Mapped[Principal] = relationship(lazy="joined")



class DirectoryChange(Base):
    """What each revision changed, so every process can update its index without reloading it all."""

    __tablename__ = "directory_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # principal | group | resource | grant | token
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(index=True)


class Decision(Base):
    """One authorization decision, written in batches off the request path."""

    __tablename__ = "decisions"
    # Keyed by (time, id), and on SQLite stored in that key's order: every query, page and prune
    # reads decisions by time, so this one B-tree serves them all. Decisions arrive by the tens of
    # thousands a second; a separate time index cost ~30% more per insert, and an index on
    # actor or resource several times the insert itself. Queries narrow by time first.
    __table_args__ = (PrimaryKeyConstraint("decided_at", "id"), {"sqlite_with_rowid": False})

    id: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[datetime]
    caller: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(255))
    allowed: Mapped[bool]
    policy_version: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(BigInteger)
    latency_us: Mapped[int] = mapped_column(Integer)
    grant_ids: Mapped[list[int] | None] = mapped_column(JSON)
    # When the check's request gave properties or a context: the SHA-256 of them as canonical JSON
    # (accessreview.authz.properties.Given.digest), so an auditor can tell which decisions rested on
    # facts the caller supplied and check a caller's record of them, without the log keeping them.
    properties_sha256: Mapped[str | None] = mapped_column(String(64))


class GrantUsage(Base):
    """When a grant last carried an allowed decision (kept after the grant is removed, for reviews)."""

    __tablename__ = "grant_usage"

    grant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_used_at: Mapped[datetime]
    uses: Mapped[int] = mapped_column(BigInteger, default=0)


class CampaignDefinition(Base):
    """What a review covers, who reviews, its rhythm and its rules; each run is a Campaign."""

    __tablename__ = "campaign_definitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    reviewer_rule: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"rule": …, "principal": …}
    fallback_reviewer: Mapped[str] = mapped_column(String(255))
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    duration_days: Mapped[int] = mapped_column(Integer)
    reminders: Mapped[dict[str, Any]] = mapped_column(JSON)
    escalation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    on_no_response: Mapped[str] = mapped_column(String(16))
    # What an undecided item gets under on_no_response=recommendation when its advice did not rest on
    # complete data (keep | revoke).
    on_no_response_fallback: Mapped[str] = mapped_column(String(16), default="keep",
                                                         server_default="keep")
    justification: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"revoke": true, "keep": false}
    recommendation: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"unused_days": 90}
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"cron"|"interval", "timezone"}
    holds: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"days": None (until lifted), "follow_up_days": 7}
    sign_off: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"refuse_signer_who_decided": false}
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Campaign(Base):
    """One run of a definition, for one period, with its population frozen at one revision."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("definition_id", "period", name="uq_campaigns_definition_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("campaign_definitions.id"), index=True)
    period: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # the definition as it was at launch
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | closed | signed_off
    launched_by: Mapped[str] = mapped_column(String(255))
    launched_at: Mapped[datetime]
    due_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    revision: Mapped[int] = mapped_column(BigInteger)
    policy_version: Mapped[str] = mapped_column(String(64))
    population_count: Mapped[int] = mapped_column(Integer)
    population_hash: Mapped[str] = mapped_column(String(64))
    freshness: Mapped[dict[str, Any]] = mapped_column(JSON)  # per source at launch, and any flag
    # The directory at the launch revision: grants in scope and out of scope (by reason), memberships.
    reconciliation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signed_off_by: Mapped[str | None] = mapped_column(String(255))
    signed_off_at: Mapped[datetime | None]
    sign_off_statement: Mapped[str | None] = mapped_column(Text)
    remediation_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    follow_up: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # access that came back, found after N days


class ReviewItem(Base):
    """One grant (or group membership) of a campaign's frozen population, and what became of it."""

    __tablename__ = "review_items"
    # A campaign's items are walked in id order a chunk at a time (launch, close, remediation, reports),
    # found from an index in that order rather than by filtering the whole campaign again; a reviewer's
    # queue, its counts (by campaign, status, recommendation, role) and a page of ids are read from
    # ix_review_items_queue alone, without visiting the items.
    __table_args__ = (Index("ix_review_items_campaign_order", "campaign_id", "id"),
                      Index("ix_review_items_campaign_status", "campaign_id", "status", "id"),
                      Index("ix_review_items_queue", "reviewer", "campaign_id", "status", "recommendation", "role",
                            "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    kind: Mapped[str] = mapped_column(String(16))  # grant | membership
    grant_id: Mapped[int | None] = mapped_column(Integer)
    principal_key: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str | None] = mapped_column(String(64))
    resource_key: Mapped[str] = mapped_column(String(255))  # for a membership: the group
    frozen: Mapped[dict[str, Any]] = mapped_column(JSON)  # principal, resource and grant as they were
    effective_permissions: Mapped[dict[str, Any]] = mapped_column(JSON)
    explanation: Mapped[list[Any]] = mapped_column(JSON)
    last_used_at: Mapped[datetime | None]
    recommendation: Mapped[str] = mapped_column(String(16))  # keep | revoke | review (nothing to advise)
    recommendation_reason: Mapped[str] = mapped_column(Text)
    # complete: the advice rests on all the data it needs; incomplete (or unknown, on items made before
    # it was recorded): it does not, and on_no_response never applies it.
    recommendation_confidence: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[int] = mapped_column(Integer, default=0)
    reviewer_of_record: Mapped[str | None] = mapped_column(String(255))
    reviewer: Mapped[str | None] = mapped_column(String(255))  # ix_review_items_queue leads with it
    assignment_note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | decided
    decision: Mapped[str | None] = mapped_column(String(16))
    justification: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    automated_rule: Mapped[str | None] = mapped_column(String(64))
    overridden: Mapped[bool] = mapped_column(default=False)
    escalated_at: Mapped[datetime | None]
    last_reminded_at: Mapped[datetime | None]
    remediation_state: Mapped[str | None] = mapped_column(String(16))  # pending|applied|verified|failed
    remediation_detail: Mapped[str | None] = mapped_column(Text)
    remediation_attempts: Mapped[int] = mapped_column(Integer, default=0)
    applied_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    # Rises with every change to who decides the item or what was decided; a client that sends the
    # version it saw is told (409 stale_item) when the item moved on since.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class ReviewEvent(Base):
    """The history of one review item: assignments, decisions, changes, overrides, escalations."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    stage: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class SigningKey(Base):
    """Every key that has signed reports; old public keys stay here so old reports still verify."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    first_used_at: Mapped[datetime]


class Report(Base):
    """A signed workbook in the report store (never overwritten: a new report is a new version)."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("file_name", name="uq_reports_file_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # campaign | access | decisions
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))  # sign_off | remediation | ad_hoc
    version: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(ForeignKey("signing_keys.key_id"))
    signed_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Ed25519 over the workbook's bytes (64 bytes); None for reports stored before it was made.
    raw_signature: Mapped[bytes | None] = mapped_column(LargeBinary(64))


JOB_STATES = ("queued", "running", "done", "failed")


class Job(Base):
    """A long piece of work (launch, close, remediation, report, reminders) run in committed steps.

    ``cursor`` is where the next step starts; each step changes it in the transaction of the work
    it did, so a job killed at any moment resumes after its last committed step. ``active_key``
    (``kind:subject``) is set while the job is queued or running: a unique index keeps a second job
    of the same kind on the same subject from starting.
    """

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("active_key", name="uq_jobs_active_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str | None] = mapped_column(String(255), index=True)  # campaign:7, campaign_definition:2
    active_key: Mapped[str | None] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | done | failed
    phase: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # what it made: campaign, reports, counts
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # steps that started
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]


class OutboxMessage(Base):
    """A mail or webhook recorded with the change that causes it, sent after commit, marked when sent."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)  # stable: the e-mail's Message-ID
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    recipient: Mapped[str | None] = mapped_column(String(320))  # an address or a URL
    principal: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # text for mail, the JSON event for a webhook
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]


class StagedImportRow(Base):
    """A row of a directory import too large for one transaction, staged for its job: the job applies
    them a batch a step (``batch`` order; removals of a replace first) and deletes them when it ends.
    ``position`` is the row's index in its section of the request, for error reports."""

    __tablename__ = "staged_import_rows"
    __table_args__ = (Index("ix_staged_import_rows_batch", "staging_key", "batch"),)

    staging_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(String(16))  # principals | resources | grants | removals
    position: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    staged_at: Mapped[datetime] = mapped_column(index=True)


class Hold(Base):
    """A revocation that holds: while active, the grant (or membership) a review removed cannot come
    back by a sync or a write; it names the campaign, item and decision that removed it.

    Active while not expired (``expires_at``) and not lifted, or lifted only until ``lift_until``.
    """

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_identity", "principal_key", "resource_key", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # grant | membership (role "member", resource the group)
    principal_key: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(64))
    resource_key: Mapped[str] = mapped_column(String(255))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)  # by, at, justification, rule, signed off by
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(255))
    lift_justification: Mapped[str | None] = mapped_column(Text)
    lift_until: Mapped[datetime | None]
