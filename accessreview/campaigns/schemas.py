"""Request shapes of campaign definitions and reviewing."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from ..directory.schemas import PrincipalKey, ResourceKey, Role
from ..models import Campaign, CampaignDefinition, Resource, ReviewItem
from ..validation import INTEGER_RANGE, Moment, RowId, Strict, column_text

TypeKey = column_text(Resource.type, pattern=r"^[a-z][a-z0-9_]{0,62}$")
Reason = column_text(ReviewItem.assignment_note, min_length=1)
DefinitionName = column_text(CampaignDefinition.name, min_length=1)
Description = column_text(CampaignDefinition.description)
JustificationText = column_text(ReviewItem.justification)
Statement = column_text(Campaign.sign_off_statement, min_length=1)
# Kept inside the definition's JSON: no column of their own; a cron line and a zone name are short.
Cron = Annotated[str, StringConstraints(max_length=255)]
TimeZone = Annotated[str, StringConstraints(max_length=64)]


class Scope(Strict):
    resource_types: list[TypeKey] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=list)
    resources: list[ResourceKey] = Field(default_factory=list)  # these resources only
    subtrees: list[ResourceKey] = Field(default_factory=list)   # everything under these
    principal_kinds: list[Literal["user", "group", "service"]] = Field(default_factory=lambda: ["user", "group", "service"])
    # Group memberships to review as well: None = none, [] = every group's, else these groups'.
    membership_groups: list[PrincipalKey] | None = None


class ReviewerRule(Strict):
    rule: Literal["resource_owner", "manager", "principal"]
    principal: PrincipalKey | None = None

    @model_validator(mode="after")
    def _principal_for_named(self) -> "ReviewerRule":
        if (self.rule == "principal") != (self.principal is not None):
            raise ValueError("principal is required with rule 'principal', and only with it")
        return self


class Reminders(Strict):
    days_before_due: list[Annotated[int, Field(ge=1, le=365)]] = Field(default_factory=lambda: [3])
    on_due_day: bool = True
    daily_overdue: bool = True


class Escalation(Strict):
    after_days_overdue: int = Field(ge=0, le=365)
    to: Literal["manager", "fallback"] = "manager"


class Justification(Strict):
    revoke: bool = True
    keep: bool = False
    # A keep against the advice to revoke needs a reason even where keeps do not.
    keep_against_revoke_advice: bool = False


class Recommendation(Strict):
    unused_days: int = Field(default=90, ge=1, le=3650)


class HoldSettings(Strict):
    """How long a revocation holds against a sync (None: until a security lead lifts it), and after
    how many days a follow-up checks that revoked access did not come back by another road."""

    days: int | None = Field(default=None, ge=1, le=3650)
    follow_up_days: int = Field(default=7, ge=1, le=365)


class SignOffSettings(Strict):
    """Independence of the sign-off: whether a person who decided items of the campaign (as reviewer
    or by overriding one) may sign it off. Allowed by default, and then flagged in the evidence."""

    refuse_signer_who_decided: bool = False


class Schedule(Strict):
    # Exactly one of cron and interval_days, as the document says too.
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["cron"], "properties": {"cron": {"type": "string"}, "interval_days": {"type": "null"}}},
        {"required": ["interval_days"],
         "properties": {"interval_days": {"type": "integer"}, "cron": {"type": "null"}}},
    ]})

    cron: Cron | None = None
    interval_days: int | None = Field(default=None, ge=1, le=3650)
    start: Moment | None = None  # interval schedules count from here
    timezone: TimeZone = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "Schedule":
        if (self.cron is None) == (self.interval_days is None):
            raise ValueError("give either cron or interval_days")
        if self.cron is not None:
            try:
                CronTrigger.from_crontab(self.cron, timezone=self.timezone)
            except ValueError as exc:
                raise ValueError(f"cron: {exc}") from None
        return self


class DefinitionBody(Strict):
    name: DefinitionName
    description: Description | None = None
    scope: Scope = Field(default_factory=Scope)
    reviewer: ReviewerRule
    stages: list[ReviewerRule] = Field(default_factory=list, max_length=5)  # later stages, after reviewer
    fallback_reviewer: PrincipalKey
    duration_days: int = Field(ge=1, le=365)
    reminders: Reminders = Field(default_factory=Reminders)
    escalation: Escalation | None = None
    on_no_response: Literal["keep", "revoke", "recommendation"]
    # With on_no_response=recommendation: what an item gets whose advice did not rest on complete data.
    on_no_response_fallback: Literal["keep", "revoke"] = "keep"
    justification: Justification = Field(default_factory=Justification)
    recommendation: Recommendation = Field(default_factory=Recommendation)
    schedule: Schedule | None = None
    holds: HoldSettings = Field(default_factory=HoldSettings)
    sign_off: SignOffSettings = Field(default_factory=SignOffSettings)
    enabled: bool = True


class DefinitionPatch(Strict):
    """Every field optional; what is given replaces the stored value."""

    name: DefinitionName | None = None
    description: Description | None = None
    scope: Scope | None = None
    reviewer: ReviewerRule | None = None
    stages: list[ReviewerRule] | None = Field(default=None, max_length=5)
    fallback_reviewer: PrincipalKey | None = None
    duration_days: int | None = Field(default=None, ge=1, le=365)
    reminders: Reminders | None = None
    escalation: Escalation | None = None
    on_no_response: Literal["keep", "revoke", "recommendation"] | None = None
    on_no_response_fallback: Literal["keep", "revoke"] | None = None
    justification: Justification | None = None
    recommendation: Recommendation | None = None
    schedule: Schedule | None = None
    holds: HoldSettings | None = None
    sign_off: SignOffSettings | None = None
    enabled: bool | None = None


# The version of a review item that a client saw (review items say theirs): sent with a change, it
# makes the change refused with 409 stale_item if the item changed since.
ItemVersion = Annotated[int, Field(ge=1, le=INTEGER_RANGE.stop - 1)]


class DecisionBody(Strict):
    decision: Literal["keep", "revoke"]
    justification: JustificationText | None = None
    version: ItemVersion | None = None


class BulkDecision(DecisionBody):
    item: RowId


class BulkDecisions(Strict):
    decisions: list[BulkDecision] = Field(min_length=1, max_length=1000)


class ReassignBody(Strict):
    to: PrincipalKey
    reason: Reason
    version: ItemVersion | None = None


class CloseBody(Strict):
    """dry_run: say what the close would do (per rule, how many items it keeps and revokes, and a page
    of them with why) and change nothing."""

    dry_run: bool = False
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: int | None = Field(default=None, ge=1, le=1000)


class SignOffBody(Strict):
    statement: Statement
