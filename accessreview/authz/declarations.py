"""What the policy declares: actor and resource types, their roles, permissions and relations.

oso validates the policy and evaluates it, but does not expose the declarations of its resource
blocks. The directory needs them to validate writes (one source of truth, no second list in
Python), so they are read here from the same files oso loads. Only the declaration lines are read;
what roles *mean* is always asked of oso.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_BLOCK = re.compile(r"\b(actor|resource)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


class PolicyDeclarationError(ValueError):
    pass


def type_key(polar_name: str) -> str:
    """``Organization`` → ``organization``; ``BillingAccount`` → ``billing_account``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", polar_name).lower()


@dataclass(frozen=True)
class ResourceType:
    key: str
    polar_name: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    relations: dict[str, str] = field(default_factory=dict)  # relation name -> resource type key

    @property
    def parent_type(self) -> str | None:
        return self.relations.get("parent")


@dataclass(frozen=True)
class Declarations:
    actor_types: dict[str, str]  # key -> polar name
    resource_types: dict[str, ResourceType]

    def resource_type(self, key: str) -> ResourceType | None:
        return self.resource_types.get(key)


def strip_comments(source: str) -> str:
    """Remove ``#`` comments, leaving string literals alone."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(source):
        char = source[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < len(source):
                out.append(source[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char == "#":
            while i < len(source) and source[i] != "\n":
                i += 1
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Block:
    kind: str  # actor | resource
    name: str
    body: str
    start: int  # span of the whole block in the comment-free text
    end: int


def blocks(text: str) -> list[Block]:
    """The actor and resource blocks of comment-free policy text."""
    found = []
    for match in _BLOCK.finditer(text):
        depth = 0
        for i in range(match.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    found.append(Block(match.group(1), match.group(2), text[match.end():i], match.start(), i + 1))
                    break
        else:
            raise PolicyDeclarationError(f"unbalanced braces in the block of {match.group(2)}")
    return found


def _string_list(body: str, name: str) -> tuple[str, ...]:
    match = re.search(rf"\b{name}\s*=\s*\[(.*?)\]", body, re.S)
    return tuple(_STRING.findall(match.group(1))) if match else ()


def _relations(body: str, polar_to_key: dict[str, str]) -> dict[str, str]:
    match = re.search(r"\brelations\s*=\s*\{(.*?)\}", body, re.S)
    if not match:
        return {}
    relations = {}
    for name, polar_type in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z_][A-Za-z0-9_]*)", match.group(1)):
        if polar_type not in polar_to_key:
            raise PolicyDeclarationError(f"relation {name} names undeclared type {polar_type}")
        relations[name] = polar_to_key[polar_type]
    return relations


def parse_declarations(sources: list[str]) -> Declarations:
    found = [(b.kind, b.name, b.body) for source in sources for b in blocks(strip_comments(source))]
    for kind, name, body in found:
        if kind == "resource":
            _check_implication_cycles(name, body)
    polar_to_key = {name: type_key(name) for _, name, _ in found}
    actor_types: dict[str, str] = {}
    resource_types: dict[str, ResourceType] = {}
    for kind, name, body in found:
        key = polar_to_key[name]
        if key in actor_types or key in resource_types:
            raise PolicyDeclarationError(f"type {name} is declared twice")
        if kind == "actor":
            actor_types[key] = name
        else:
            resource_types[key] = ResourceType(
                key=key,
                polar_name=name,
                roles=_string_list(body, "roles"),
                permissions=_string_list(body, "permissions"),
                relations=_relations(body, polar_to_key),
            )
    _check_parent_tree(resource_types)
    return Declarations(actor_types=actor_types, resource_types=resource_types)


_IMPLICATION = re.compile(r'"([A-Za-z0-9_]+)"\s+if\s+"([A-Za-z0-9_]+)"\s*;')


def _check_implication_cycles(name: str, body: str) -> None:
    """``"a" if "b"; "b" if "a";`` loads in Polar but recurses without end when no grant is found."""
    implied_by: dict[str, set[str]] = {}
    for implied, premise in _IMPLICATION.findall(body):
        implied_by.setdefault(implied, set()).add(premise)
    for start in implied_by:
        stack, seen = [start], set()
        while stack:
            for premise in implied_by.get(stack.pop(), ()):
                if premise == start:
                    raise PolicyDeclarationError(f"{name}: {start!r} implies itself through its own rules")
                if premise not in seen:
                    seen.add(premise)
                    stack.append(premise)


def _check_parent_tree(resource_types: dict[str, ResourceType]) -> None:
    """Parent relations must name resource types and form a tree of them, so that no resource can
    be its own ancestor."""
    for start in resource_types.values():
        if start.parent_type is not None and start.parent_type not in resource_types:
            raise PolicyDeclarationError(f"the parent of {start.polar_name} must be a resource type")
        seen, current = {start.key}, start.parent_type
        while current is not None:
            if current in seen:
                raise PolicyDeclarationError(f"parent relations loop through {current}; they must form a tree")
            seen.add(current)
            current = resource_types[current].parent_type if current in resource_types else None
