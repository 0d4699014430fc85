"""Bearer tokens for callers of the service. A token is shown once; only a keyed hash is stored."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Mapping

from pydantic import StringConstraints

from sqlalchemy import select
from sqlalchemy.orm import Session

from .authz.index import TokenRecord
from .audit import WriteContext, append_event, lock_state
from .clock import as_utc
from .db import get_or_404
from .errors import BadRequest, Unprocessable
from .directory.schemas import PrincipalKey
from .models import API_TOKEN, Principal, ServiceToken
from .revisions import new_revision
from .validation import Strict, column_text

TOKEN_PREFIX = "ar_"
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class TokenRequest(Strict):
    """A new token, as the tokens page and ``accessreview token create`` ask for it."""

    principal: PrincipalKey
    expires_in: Annotated[str, StringConstraints(max_length=16)] | None = None  # 90d, 12h, 30m, 2w
    description: column_text(ServiceToken.description) | None = None  # type: ignore[valid-type]

    def lifetime(self) -> timedelta | None:
        return parse_duration(self.expires_in) if self.expires_in else None


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise BadRequest(f"{text!r} is not a duration like 90d, 12h, 30m or 2w", field="expires_in",
                         code="invalid_value")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def hash_token(secret_key: str, token: str) -> str:
    return hmac.digest(secret_key.encode(), token.encode(), hashlib.sha256).hex()


# The portal sends the same few tokens thousands of times a second: remember their hashes. Whether a
# token is live is still read from the current index on every request, so revocation is unaffected.
_recent_hash = functools.lru_cache(maxsize=1024)(hash_token)


def token_state(token: ServiceToken) -> dict[str, Any]:
    return {
        "id": token.id, "principal": token.principal_key, "description": token.description,
        "purpose": token.purpose, "created_by": token.created_by, "created_at": as_utc(token.created_at).isoformat(),
        "expires_at": token.expires_at and as_utc(token.expires_at).isoformat(),
        "revoked_at": token.revoked_at and as_utc(token.revoked_at).isoformat(),
        "used_at": token.used_at and as_utc(token.used_at).isoformat(),
    }


def create_token(session: Session, ctx: WriteContext, secret_key: str, principal: str,
                 expires_in: timedelta | None = None, description: str | None = None,
                 purpose: str = API_TOKEN) -> tuple[str, dict[str, Any]]:
    if session.get(Principal, principal) is None:
        raise Unprocessable(f"principal {principal} does not exist", field="principal", code="unknown_reference")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    row = ServiceToken(id=token_id, principal_key=principal, token_hash=hash_token(secret_key, token),
                       description=description, purpose=purpose, created_by=ctx.actor, created_at=ctx.now,
                       expires_at=ctx.now + expires_in if expires_in else None)
    session.add(row)
    session.flush()
    state = token_state(row)
    new_revision(session, ctx, lock_state(session), [("token", token_id)])
    append_event(session, ctx, "token.created", f"token:{token_id}", None, state)
    return token, state


def revoke_token(session: Session, ctx: WriteContext, token_id: str) -> dict[str, Any]:
    row = get_or_404(session, ServiceToken, token_id, "token")
    if row.revoked_at is None:
        before = token_state(row)
        row.revoked_at = ctx.now
        session.flush()
        new_revision(session, ctx, lock_state(session), [("token", token_id)])
        append_event(session, ctx, "token.revoked", f"token:{token_id}", before, token_state(row))
    return token_state(row)


def list_tokens(session: Session, principal: str | None = None) -> list[dict[str, Any]]:
    query = select(ServiceToken).order_by(ServiceToken.created_at, ServiceToken.id)
    if principal:
        query = query.where(ServiceToken.principal_key == principal)
    return [token_state(t) for t in session.scalars(query)]


def live_token(tokens: Mapping[str, TokenRecord], secret_key: str, token: str, now: datetime) -> TokenRecord | None:
    """The token's record if it is live (known, not revoked, not expired), else None.

    ``tokens`` is the in-memory table of live tokens (the directory index's), keyed by hash.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    record = tokens.get(_recent_hash(secret_key, token))
    if record is None or (record.expires_at is not None and record.expires_at <= now):
        return None
    return record
