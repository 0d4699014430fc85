"""Request shapes of the directory API and of bulk imports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from ..authz.properties import JsonObject
from ..models import Grant, Principal, Resource
from ..validation import Moment, Strict, column_text

PRINCIPAL_KEY = r"^(user|group|service):[A-Za-z0-9._@+-]{1,200}$"
RESOURCE_KEY = r"^[a-z][a-z0-9_]{0,62}:[A-Za-z0-9._@+-]{1,200}$"
ROLE = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
SOURCE = r"^[a-z][a-z0-9_-]{0,63}$"

# Each text field is as long as the column that keeps it, at most (a resource key's type and id
# together too: the pattern alone would allow 264 characters).
PrincipalKey = column_text(Principal.key, pattern=PRINCIPAL_KEY)
ResourceKey = column_text(Resource.key, pattern=RESOURCE_KEY)
Role = column_text(Grant.role, pattern=ROLE)
Source = column_text(Grant.source, pattern=SOURCE)
Name = column_text(Principal.name)
Department = column_text(Principal.department)
ResourceName = column_text(Resource.name)
GrantedBy = column_text(Grant.granted_by)
LongText = column_text(Grant.reason)
Email = column_text(Principal.email, pattern=r"^[^@\s]+@[^@\s]+$")

# Which principal fields make sense for which kind of principal.
PRINCIPAL_FIELDS = {
    "user": {"name", "email", "department", "manager", "status", "last_seen_at", "attributes"},
    "group": {"name", "members"},
    "service": {"name", "status", "attributes"},
}

# A principal's or resource's custom attributes: a JSON object bounded as a check's properties are
# (text up to LONG_TEXT characters, nested at most MAX_DEPTH deep), since rules read both alike.
Attributes = JsonObject


class PrincipalBody(Strict):
    """``PUT /v1/principals/{principal}``: the whole principal (fields left out are cleared)."""

    name: Name | None = None
    email: Email | None = None
    department: Department | None = None
    manager: PrincipalKey | None = None
    status: Literal["active", "disabled"] | None = None
    last_seen_at: Moment | None = None
    members: list[PrincipalKey] | None = Field(default=None, max_length=100_000)
    attributes: Attributes = Field(default_factory=dict)


class PrincipalRow(PrincipalBody):
    id: PrincipalKey


class ResourceBody(Strict):
    """``PUT /v1/resources/{type}/{id}``."""

    name: ResourceName | None = None
    parent: ResourceKey | None = None
    owner: PrincipalKey | None = None
    attributes: Attributes = Field(default_factory=dict)


class ResourceRow(ResourceBody):
    id: ResourceKey


class GrantRow(Strict):
    """One row of an import's ``grants``; the import's ``source`` applies to every row."""

    principal: PrincipalKey
    role: Role
    resource: ResourceKey
    granted_by: GrantedBy | None = None
    granted_at: Moment | None = None
    reason: LongText | None = None
    expires_at: Moment | None = None


class GrantBody(GrantRow):
    """``POST /v1/grants``."""

    source: Source = "manual"


class ImportPayload(Strict):
    """``POST /v1/directory/import`` and ``accessreview directory import``."""

    principals: list[PrincipalRow] = Field(default_factory=list)
    resources: list[ResourceRow] = Field(default_factory=list)
    grants: list[GrantRow] = Field(default_factory=list)
    source: Source = "import"
    mode: Literal["merge", "replace"] = "merge"
    dry_run: bool = False


class LiftBody(Strict):
    """``POST /v1/holds/{id}/lift`` and the hold page's form."""

    justification: Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]
    until: Moment | None = None  # the lift lapses then, and the hold stands again
