"""The directory revision: raised once per write, with a note of what the write changed.

Every process keeps its index current by reading those notes (``directory_changes``) for the
revisions it has not seen, instead of reloading the whole directory.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy.orm import Session

from .audit import WriteContext
from .db import bulk_insert
from .models import DirectoryChange, DirectoryState


def new_revision(session: Session, ctx: WriteContext, state: DirectoryState,
                 changes: Iterable[tuple[str, object]]) -> int:
    """Raise the revision of the locked ``state`` row and record what changed under it."""
    state.revision += 1
    rows = [{"revision": state.revision, "kind": kind, "key": str(key), "created_at": ctx.now}
            for kind, key in changes]
    bulk_insert(session, DirectoryChange, rows)
    return state.revision
