"""Loading the Polar policy into oso, and the Python objects that oso evaluates it over.

Everything oso-specific in the service goes through this module (oso is a legacy library: keep it
behind one door). The Python classes oso sees are made from the policy's own declarations, one per
actor and resource type, so adding a type to the policy needs no Python change.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from oso import Oso
from polar import Variable

from .deadline import oso_query
from .declarations import Declarations, PolicyDeclarationError, parse_declarations
from .index import DirectoryIndex, GrantRecord, ResourceRecord
from .properties import Given


class PolicyLoadError(Exception):
    """The policy files could not be read, parsed or validated."""


_NOTHING: dict = {}


class _World:
    """One evaluation's view: the directory index, the moment expiry is judged at, objects with
    attributes of their own (a review item of the service's, or a check's resource with the
    properties its request gives), and the subject's properties and the context the request gives."""

    __slots__ = ("index", "now", "policy", "objects", "subject", "subject_properties", "context")

    def __init__(self, policy: "Policy", index: DirectoryIndex, now: datetime,
                 objects: dict[str, tuple[ResourceRecord, dict]] | None = None,
                 subject: str | None = None, given: Given | None = None) -> None:
        self.policy = policy
        self.index = index
        self.now = now
        self.objects = objects or _NOTHING
        self.subject = subject
        self.subject_properties = given.subject if given is not None else _NOTHING
        self.context = given.context if given is not None else _NOTHING

    def record(self, key: str) -> ResourceRecord | None:
        found = self.objects.get(key)
        return found[0] if found else self.index.resources.get(key)

    def actor(self, key: str):
        record = self.index.principals.get(key)
        cls = record and self.policy.actor_classes.get(record.kind)
        return cls(record.key, self) if cls else None

    def resource(self, key: str):
        record = self.record(key)
        cls = record and self.policy.resource_classes.get(record.type)
        return cls(record.key, self) if cls else None


class _PolarEntity:
    """What actors and resources registered with oso share: a directory key, the evaluation's world,
    the ``id`` and ``context`` a rule may read, and attributes that read as nil when nothing gives them
    (so that a rule that needs one fails rather than errs)."""

    __slots__ = ("key", "_world")

    def __init__(self, key: str, world: _World) -> None:
        self.key = key
        self._world = world

    @property
    def id(self) -> str:
        return self.key.partition(":")[2]

    @property
    def context(self) -> dict:
        return self._world.context

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._attribute(name)

    def _attribute(self, name: str):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"


class PolarActor(_PolarEntity):
    """Base of the actor classes registered with oso (``User``, ``Service``)."""

    __slots__ = ()

    def is_active(self) -> bool:
        return self._world.index.principals[self.key].status == "active"

    def grants_on(self, resource: "PolarResource") -> list["PolarGrant"]:
        return [PolarGrant(g, self._world.now) for g in self._world.index.grants_on(self.key, resource.key)]

    def _attribute(self, name: str):
        # The request's properties of the subject, over its directory attributes (email, department…).
        world = self._world
        if self.key == world.subject and name in world.subject_properties:
            return world.subject_properties[name]
        return world.index.principal_attributes.get(self.key, _NOTHING).get(name)


class PolarResource(_PolarEntity):
    """Base of the resource classes registered with oso (``Organization``, ``Document``…)."""

    __slots__ = ()

    @property
    def parent(self):
        parent_key = self._world.record(self.key).parent
        return None if parent_key is None else self._world.resource(parent_key)

    def _attribute(self, name: str):
        # Those of the service's own objects (a review item's reviewer), or the properties a check's
        # request gives, over the directory's (name, owner, attributes).
        world = self._world
        found = world.objects.get(self.key)
        if found is not None and name in found[1]:
            return found[1][name]
        return world.index.resource_attributes.get(self.key, _NOTHING).get(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PolarResource) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


class PolarGrant:
    __slots__ = ("record", "role", "_now")

    def __init__(self, record: GrantRecord, now: datetime) -> None:
        self.record = record
        self.role = record.role
        self._now = now

    def is_expired(self) -> bool:
        return self.record.expired_at(self._now)


@dataclass(frozen=True)
class PolicyFile:
    name: str
    source: str


class Policy:
    """A loaded, validated policy: its files, version, declarations and oso instance."""

    def __init__(self, files: list[PolicyFile]) -> None:
        self.files = files
        self.version = policy_version(files)
        try:
            self.declarations: Declarations = parse_declarations([f.source for f in files])
        except PolicyDeclarationError as exc:
            raise PolicyLoadError(str(exc)) from None
        self.actor_classes = {
            key: type(name, (PolarActor,), {"__slots__": ()})
            for key, name in self.declarations.actor_types.items()
        }
        self.resource_classes = {
            key: type(rt.polar_name, (PolarResource,), {"__slots__": ()})
            for key, rt in self.declarations.resource_types.items()
        }
        self._oso = Oso()
        for cls in [*self.actor_classes.values(), *self.resource_classes.values()]:
            self._oso.register_class(cls, name=cls.__name__)
        try:
            self._oso.load_str("\n".join(f.source for f in files))
        except Exception as exc:  # oso raises several exception types for parse and validation errors
            raise PolicyLoadError(f"{type(exc).__name__}: {exc}") from None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, policy_dir: Path) -> "Policy":
        paths = sorted(Path(policy_dir).glob("*.polar"))
        if not paths:
            raise PolicyLoadError(f"no .polar files in {policy_dir}")
        try:
            files = [PolicyFile(p.name, p.read_text(encoding="utf-8")) for p in paths]
        except OSError as exc:
            raise PolicyLoadError(str(exc)) from None
        return cls(files)

    def is_allowed(self, index: DirectoryIndex, now: datetime, actor: str, action: str, resource: str,
                   objects: dict[str, tuple[ResourceRecord, dict]] | None = None, given: Given | None = None) -> bool:
        """oso's answer; an unknown actor or resource is a deny. ``objects`` adds the service's own;
        ``given``, the request's properties and context (a resource the directory does not hold is
        then evaluated with its properties alone, under the type its key names)."""
        if given is not None:
            objects = {**(objects or {}), resource: (_record_of(index, resource), given.resource)}
        found = self._registered(index, now, actor, resource, objects, given)
        if found is None:
            return False
        with self._lock, oso_query():
            return bool(self._oso.is_allowed(found[0], action, found[1]))

    def roles_on(self, index: DirectoryIndex, now: datetime, actor: str, resource: str) -> set[str]:
        """Every role oso derives for ``actor`` on ``resource`` (granted and implied)."""
        found = self._registered(index, now, actor, resource)
        if found is None:
            return set()
        with self._lock, oso_query():
            return {result["bindings"]["role"]
                    for result in self._oso.query_rule("has_role", found[0], Variable("role"), found[1])}

    def authorized_actions(self, index: DirectoryIndex, now: datetime, actor: str, resource: str,
                           given: Given | None = None) -> set[str]:
        objects = None if given is None else {resource: (_record_of(index, resource), given.resource)}
        found = self._registered(index, now, actor, resource, objects, given)
        if found is None:
            return set()
        with self._lock, oso_query():
            return set(self._oso.authorized_actions(found[0], found[1]))

    def _registered(self, index: DirectoryIndex, now: datetime, actor: str, resource: str,
                    objects: dict[str, tuple[ResourceRecord, dict]] | None = None, given: Given | None = None):
        """The objects oso evaluates for ``actor`` and ``resource``, or None if either is unknown."""
        world = _World(self, index, now, objects, actor, given)
        actor_obj, resource_obj = world.actor(actor), world.resource(resource)
        return None if actor_obj is None or resource_obj is None else (actor_obj, resource_obj)


def _record_of(index: DirectoryIndex, resource: str) -> ResourceRecord:
    """The directory's record of ``resource``, or one for a resource it does not hold: its type from
    its key, no parent (the tree is the directory's alone)."""
    return index.resources.get(resource) or ResourceRecord(resource, resource.partition(":")[0])


def policy_version(files: list[PolicyFile]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(b"\0")
        digest.update(f.source.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
