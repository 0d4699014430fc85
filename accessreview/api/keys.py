"""Principal and resource ids taken from URL paths."""

from __future__ import annotations

import re

from ..directory.schemas import PRINCIPAL_KEY, RESOURCE_KEY
from ..errors import BadRequest, NotFound
from ..models import Principal, Resource
from ..validation import NUL, column_length, nul_refused


def principal_key(principal: str) -> str:
    _refuse_impossible(principal, "principal", column_length(Principal.key))
    if not re.match(PRINCIPAL_KEY, principal):
        raise NotFound(f"{principal!r} is not a principal id (user:…, group:…, service:…)", field="principal")
    return principal


def resource_key(type_: str, id_: str) -> str:
    key = f"{type_}:{id_}"
    _refuse_impossible(key, "resource", column_length(Resource.key))
    if not re.match(RESOURCE_KEY, key):
        raise NotFound(f"{key!r} is not a resource id", field="resource")
    return key


def _refuse_impossible(key: str, field: str, longest: int) -> None:
    """An id no row can have (a NUL in it, or longer than its column) is a bad request, as in a body."""
    if NUL in key:
        raise nul_refused((field,))
    if len(key) > longest:
        raise BadRequest(f"{field}: at most {longest} characters", field=field, code="too_long")
