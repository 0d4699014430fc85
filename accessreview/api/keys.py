"""Principal and resource ids taken from URL paths."""

from __future__ import annotations

import re

from ..directory.schemas import PRINCIPAL_KEY, RESOURCE_KEY
from ..errors import NotFound


def principal_key(principal: str) -> str:
    if not re.match(PRINCIPAL_KEY, principal):
        raise NotFound(f"{principal!r} is not a principal id (user:…, group:…, service:…)", field="principal")
    return principal


def resource_key(type_: str, id_: str) -> str:
    key = f"{type_}:{id_}"
    if not re.match(RESOURCE_KEY, key):
        raise NotFound(f"{key!r} is not a resource id", field="resource")
    return key
