"""Signing people in to the web pages without a password: a one-time link e-mailed to an active user,
exchanged for a session of a few hours.

A session is an ordinary bearer token (a keyed hash, audited, revocable, seen by every process within
the refresh interval), so revoking a person's tokens signs them out everywhere. A link's token is a
token of its own purpose: never a bearer token (the in-memory token table leaves it out), only good
for redeeming its link, once, which reads and writes the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .audit import WriteContext, append_event
from .clock import as_utc
from .models import SIGN_IN_LINK, WEB_SESSION, Principal, ServiceToken
from .tokens import create_token, hash_token, revoke_token, token_state

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
        ServiceToken.principal_key == user.key, ServiceToken.purpose == SIGN_IN_LINK,
        ServiceToken.created_at > ctx.now - LINK_INTERVAL).limit(1))
    if recent is not None:
        return None
    token, _ = create_token(session, ctx, secret_key, user.key, LINK_LIFETIME, LINK_DESCRIPTION, SIGN_IN_LINK)
    return SignInLink(user.key, user.email, token)


@dataclass(frozen=True)
class LinkStatus:
    """What a sign-in link's token is worth now: whom it signs in (``holder``), or why it does not
    (``refused``: unknown, used, expired, revoked or inactive, and for a used link, when)."""

    holder: Principal | None = None
    refused: str | None = None
    used_at: datetime | None = None


def _link_row(session: Session, secret_key: str, token: str) -> ServiceToken | None:
    return session.scalar(select(ServiceToken).where(
        ServiceToken.token_hash == hash_token(secret_key, token), ServiceToken.purpose == SIGN_IN_LINK)
        .execution_options(populate_existing=True))


def _status(row: ServiceToken | None, now: datetime) -> LinkStatus:
    if row is None:
        return LinkStatus(refused="unknown")
    if row.used_at is not None:
        return LinkStatus(refused="used", used_at=as_utc(row.used_at))
    if row.revoked_at is not None:
        return LinkStatus(refused="revoked")
    if row.expires_at is None or as_utc(row.expires_at) <= now:
        return LinkStatus(refused="expired")
    if row.principal.status != "active":
        return LinkStatus(refused="inactive")
    return LinkStatus(holder=row.principal)


def link_status(session: Session, ctx: WriteContext, secret_key: str, token: str) -> LinkStatus:
    """Whom a sign-in link would sign in, if it is still good: unused, unexpired, its user active."""
    return _status(_link_row(session, secret_key, token), ctx.now)


def is_link_token(session: Session, secret_key: str, token: str) -> bool:
    """Whether ``token`` is a sign-in link's (used or not), so a form can say why it is refused."""
    return _link_row(session, secret_key, token) is not None


@dataclass(frozen=True)
class Redemption:
    principal: str
    session_token: str


def redeem_link(session: Session, ctx: WriteContext, secret_key: str, token: str) -> Redemption | LinkStatus:
    """Use up a sign-in link: the principal and a new session token; or, when the link is no good,
    its :class:`LinkStatus` (a refused link that exists is audited, in this unit of work).

    Using it up is one conditional UPDATE: of two redemptions at once (PostgreSQL's row lock makes
    the second wait, then find ``used_at`` set), exactly one changes the row, and only that one
    gets a session."""
    row = _link_row(session, secret_key, token)
    status = _status(row, ctx.now)
    if status.holder is not None:
        won = session.execute(
            update(ServiceToken).where(ServiceToken.id == row.id, ServiceToken.used_at.is_(None),
                                       ServiceToken.revoked_at.is_(None), ServiceToken.expires_at > ctx.now)
            .values(used_at=ctx.now, revoked_at=ctx.now), execution_options={"synchronize_session": False})
        if won.rowcount == 1:
            session.refresh(row)
            append_event(session, ctx, "token.link_redeemed", f"token:{row.id}", None, token_state(row))
            session_token, _ = create_token(session, ctx, secret_key, row.principal_key, SESSION_LIFETIME,
                                            SESSION_DESCRIPTION, WEB_SESSION)
            return Redemption(row.principal_key, session_token)
        status = _status(_link_row(session, secret_key, token), ctx.now)  # another redemption won
    if row is not None:
        append_event(session, ctx, "token.link_refused", f"token:{row.id}", None, {
            "principal": row.principal_key, "reason": status.refused,
            "used_at": status.used_at and status.used_at.isoformat()})
    return status


def end_session(session: Session, ctx: WriteContext, secret_key: str, token: str) -> bool:
    """Revoke ``token`` if it is a web session; an API token pasted into the sign-in form is left
    alone (other programs may use it). Says whether it revoked anything."""
    row = session.scalar(select(ServiceToken).where(ServiceToken.token_hash == hash_token(secret_key, token)))
    if row is None or row.purpose != WEB_SESSION or row.revoked_at is not None:
        return False
    revoke_token(session, ctx, row.id)
    return True


def live_tokens_of(session: Session, principal: str, now: datetime) -> dict[str, list[ServiceToken]]:
    """``principal``'s tokens that still work (not revoked, not expired, a link not used), by purpose."""
    found: dict[str, list[ServiceToken]] = {}
    for row in session.scalars(select(ServiceToken).where(
            ServiceToken.principal_key == principal, ServiceToken.revoked_at.is_(None),
            (ServiceToken.expires_at.is_(None)) | (ServiceToken.expires_at > now)).order_by(ServiceToken.created_at)):
        if row.purpose != SIGN_IN_LINK or row.used_at is None:
            found.setdefault(row.purpose, []).append(row)
    return found


def sign_out_everywhere(session: Session, ctx: WriteContext, principal: str, purposes: tuple[str, ...]) -> int:
    """Revoke every live token of ``principal`` of these purposes (web sessions and unused sign-in
    links; API tokens too when asked), each audited as any revocation. Says how many."""
    revoked = 0
    for purpose, rows in live_tokens_of(session, principal, ctx.now).items():
        if purpose in purposes:
            for row in rows:
                revoke_token(session, ctx, row.id)
                revoked += 1
    return revoked
