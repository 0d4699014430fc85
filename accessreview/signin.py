"""Signing people in to the web pages without a password: a one-time link e-mailed to an active user,
exchanged for a session of a few hours. Both are ordinary bearer tokens (keyed hashes, audited,
revocable, seen by every process within the refresh interval), told apart by their description, so
revoking a person's tokens signs them out everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .audit import WriteContext
from .clock import as_utc
from .models import Principal, ServiceToken
from .tokens import create_token, hash_token, revoke_token

LINK_DESCRIPTION = "web sign-in link"
SESSION_DESCRIPTION = "web session"
LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
LINK_INTERVAL = timedelta(minutes=1)  # at most one link a minute per person


@dataclass(frozen=True)
class SignInLink:
    principal: str
    address: str
    token: str


def active_user_with_email(session: Session, email: str) -> Principal | None:
    """The one active user with this address (case aside); None for none, or for an address that
    several users share, since a link must name one person."""
    users = list(session.scalars(select(Principal).where(
        Principal.kind == "user", Principal.status == "active",
        func.lower(Principal.email) == email.strip().lower()).limit(2)))
    return users[0] if len(users) == 1 else None


def issue_link(session: Session, ctx: WriteContext, secret_key: str, user: Principal) -> SignInLink | None:
    """A one-time sign-in token for ``user`` (found by :func:`active_user_with_email`); None when one
    was sent to them less than LINK_INTERVAL ago (a form pressed over and over must not flood their
    mailbox). The caller says the same either way, so the form tells nobody who has an account."""
    recent = session.scalar(select(ServiceToken.id).where(
        ServiceToken.principal_key == user.key, ServiceToken.description == LINK_DESCRIPTION,
        ServiceToken.created_at > ctx.now - LINK_INTERVAL).limit(1))
    if recent is not None:
        return None
    token, _ = create_token(session, ctx, secret_key, user.key, LINK_LIFETIME, LINK_DESCRIPTION)
    return SignInLink(user.key, user.email, token)


def _live_row(session: Session, ctx: WriteContext, secret_key: str, token: str,
              description: str) -> ServiceToken | None:
    row = session.scalar(select(ServiceToken).where(ServiceToken.token_hash == hash_token(secret_key, token)))
    if row is None or row.description != description or row.revoked_at is not None:
        return None
    if row.expires_at is not None and as_utc(row.expires_at) <= ctx.now:
        return None
    return row


def _good_link(session: Session, ctx: WriteContext, secret_key: str, token: str) -> ServiceToken | None:
    row = _live_row(session, ctx, secret_key, token, LINK_DESCRIPTION)
    return row if row is not None and row.principal.status == "active" else None


def link_holder(session: Session, ctx: WriteContext, secret_key: str, token: str) -> Principal | None:
    """Whom a sign-in link would sign in, if it is still good: unused, unexpired, its user active."""
    row = _good_link(session, ctx, secret_key, token)
    return row.principal if row is not None else None


def redeem_link(session: Session, ctx: WriteContext, secret_key: str, token: str) -> tuple[str, str] | None:
    """Use up a sign-in link: (principal, a new session token), or None when the link is no good."""
    row = _good_link(session, ctx, secret_key, token)
    if row is None:
        return None
    revoke_token(session, ctx, row.id)
    session_token, _ = create_token(session, ctx, secret_key, row.principal_key, SESSION_LIFETIME,
                                    SESSION_DESCRIPTION)
    return row.principal_key, session_token


def end_session(session: Session, ctx: WriteContext, secret_key: str, token: str) -> bool:
    """Revoke ``token`` if it is a web session; an API token pasted into the sign-in form is left
    alone (other programs may use it). Says whether it revoked anything."""
    row = _live_row(session, ctx, secret_key, token, SESSION_DESCRIPTION)
    if row is None:
        return False
    revoke_token(session, ctx, row.id)
    return True
