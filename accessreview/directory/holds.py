"""Revocation holds: what a review removed stays removed until a security lead lifts the hold.

Remediation leaves a hold on (principal, role, resource) for each revocation it applied — for a
group membership, on (member, ``member``, group). While a hold is active, a single write that would
restore it is refused (409 ``revoked_by_review``), and an import leaves that row out and says so
(``held``), applying the rest. Access that comes back by another road (a new membership, a grant
on a parent) is not blocked: the campaign's follow-up finds it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..audit import WriteContext, append_event
from ..clock import as_utc
from ..db import bulk_insert, get_or_404
from ..errors import Conflict, Unprocessable
from ..models import Hold
from ..pagination import Page, paginate

CHUNK = 500


def active(now: datetime):
    """The SQL condition of a hold that holds at ``now``."""
    return and_(or_(Hold.expires_at.is_(None), Hold.expires_at > now),
                or_(Hold.lifted_at.is_(None), and_(Hold.lift_until.is_not(None), Hold.lift_until <= now)))


def is_active(hold: Hold, now: datetime) -> bool:
    expired = hold.expires_at is not None and as_utc(hold.expires_at) <= now
    lifted = hold.lifted_at is not None and (hold.lift_until is None or as_utc(hold.lift_until) > now)
    return not expired and not lifted


def hold_state(hold: Hold, now: datetime) -> dict[str, Any]:
    iso = lambda value: value and as_utc(value).isoformat()  # noqa: E731
    return {
        "id": hold.id, "kind": hold.kind, "principal": hold.principal_key, "role": hold.role,
        "resource": hold.resource_key, "campaign": hold.campaign_id, "item": hold.item_id,
        "decision": hold.decision, "created_at": iso(hold.created_at), "expires_at": iso(hold.expires_at),
        "active": is_active(hold, now),
        "lifted": None if hold.lifted_at is None else {
            "at": iso(hold.lifted_at), "by": hold.lifted_by, "justification": hold.lift_justification,
            "until": iso(hold.lift_until)},
    }


def summary(hold: Hold) -> dict[str, Any]:
    """How a refusal or a held import row names its hold."""
    return {"id": hold.id, "campaign": hold.campaign_id, "item": hold.item_id}


def find_active(session: Session, now: datetime, identities: Iterable[tuple[str, str, str]]
                ) -> dict[tuple[str, str, str], Hold]:
    """The active hold (the oldest, when several) on each of (principal, role, resource) that has one."""
    wanted = set(identities)
    ordered = sorted(wanted)
    found: dict[tuple[str, str, str], Hold] = {}
    for start in range(0, len(ordered), CHUNK):
        # principal among these and resource among those (each an index), not a list of pairs, which
        # the databases answer by scanning every hold; the extra pairs it finds are dropped below
        chunk = ordered[start:start + CHUNK]
        query = (select(Hold).where(Hold.principal_key.in_(sorted({p for p, _r, _x in chunk})),
                                    Hold.resource_key.in_(sorted({x for _p, _r, x in chunk})),
                                    active(now)).order_by(Hold.id))
        for hold in session.scalars(query):
            identity = (hold.principal_key, hold.role, hold.resource_key)
            if identity in wanted:
                found.setdefault(identity, hold)
    return found


def refuse_if_held(session: Session, now: datetime, principal: str, role: str, resource: str) -> None:
    hold = find_active(session, now, [(principal, role, resource)]).get((principal, role, resource))
    if hold is not None:
        raise Conflict(f"{principal}'s {role} on {resource} was revoked by access review campaign "
                       f"{hold.campaign_id} (item {hold.item_id}); a security lead must lift hold {hold.id} first",
                       code="revoked_by_review", field="role" if role != "member" else "members",
                       hold=summary(hold))


def place(session: Session, ctx: WriteContext, campaign, entries: list[dict[str, Any]]) -> int:
    """Holds for revocations just applied: ``entries`` give kind, principal, role, resource, item and
    the decision. Their duration is the campaign's (its definition's ``holds.days``; none: until lifted)."""
    days = ((campaign.settings or {}).get("holds") or {}).get("days")
    expires_at = ctx.now + timedelta(days=days) if days else None
    bulk_insert(session, Hold, [
        {"kind": e["kind"], "principal_key": e["principal"], "role": e["role"], "resource_key": e["resource"],
         "campaign_id": campaign.id, "item_id": e["item"], "decision": e["decision"], "created_at": ctx.now,
         "expires_at": expires_at} for e in entries])
    return len(entries)


def lift(session: Session, ctx: WriteContext, hold_id: int, justification: str, until: datetime | None) -> dict[str, Any]:
    """Lift a hold (until ``until``, when given: then it holds again); the next sync may restore the grant."""
    hold = get_or_404(session, Hold, hold_id, "hold")
    if not is_active(hold, ctx.now):
        raise Conflict(f"hold {hold_id} is not active (expired or already lifted)", code="hold_not_active",
                       field="id")
    if until is not None and as_utc(until) <= ctx.now:
        raise Unprocessable("until must be in the future", field="until", code="invalid_value")
    before = hold_state(hold, ctx.now)
    hold.lifted_at, hold.lifted_by, hold.lift_justification, hold.lift_until = ctx.now, ctx.actor, justification, until
    session.flush()
    after = hold_state(hold, ctx.now)
    append_event(session, ctx, "hold.lifted", f"hold:{hold.id}", before, after)
    return after


def get(session: Session, hold_id: int, now: datetime) -> dict[str, Any]:
    return hold_state(get_or_404(session, Hold, hold_id, "hold"), now)


def list_holds(session: Session, now: datetime, *, state: str | None, campaign: int | None, principal: str | None,
               cursor: str | None, limit: int) -> Page:
    query = select(Hold)
    if state == "active":
        query = query.where(active(now))
    elif state == "inactive":
        query = query.where(~active(now))
    if campaign is not None:
        query = query.where(Hold.campaign_id == campaign)
    if principal:
        query = query.where(Hold.principal_key == principal)
    return paginate(session, query, Hold.id, cursor, limit).map(lambda hold: hold_state(hold, now))


def count_active(session: Session, now: datetime, campaign: int | None = None) -> int:
    query = select(func.count()).select_from(Hold).where(active(now))
    if campaign is not None:
        query = query.where(Hold.campaign_id == campaign)
    return session.scalar(query) or 0
