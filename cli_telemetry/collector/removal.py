"""Deleting stored events, and everything the collector derived from them.

Two things delete events: a deletion request forgets every event of an install (`forget`),
and retention prunes those older than its limit (`retention`). Both go through `remove`,
in the caller's transaction, so that what leaves the events table leaves the rest with
it: the rollups lose exactly the deleted events (`rollups.subtract`, from the rows the DELETE
returned: an event stored meanwhile by another transaction is neither deleted nor
subtracted), and nothing more is owed to a provider for them (their ``outbox`` rows go).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import rollups
from .tables import events, outbox

IDS_PER_STATEMENT: Final = 1000
"""Event ids bound in one ``IN (...)``: far under SQLite's and PostgreSQL's limits on
parameters."""


@dataclass
class Removed:
    """What `remove` deleted."""

    events: int = 0
    in_flight: set[str] = field(default_factory=set)
    """The providers that had one of these events leased, or waiting for a retry (its
    ``outbox`` row was not due): one of them may be sending it right now."""


def remove(connection: Connection, where: Sequence[sa.ColumnElement[bool]]) -> Removed:
    """Delete the events that match ``where``, in the caller's transaction: their rollups
    and their ``outbox`` rows go with them."""
    columns = [events.c.event_id, *rollups.stored_columns()]
    rows = connection.execute(sa.delete(events).where(*where).returning(*columns)).mappings()
    deleted = rows.all()
    removed = Removed(len(deleted))
    if not deleted:
        return removed
    rollups.subtract(connection, rollups.of_stored(deleted))
    ids = sorted(row["event_id"] for row in deleted)
    now = time.time()
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        owed = connection.execute(
            sa.delete(outbox)
            .where(outbox.c.event_id.in_(ids[start : start + IDS_PER_STATEMENT]))
            .returning(outbox.c.sink, outbox.c.not_before)
        )
        removed.in_flight.update(sink for sink, not_before in owed if not_before > now)
    return removed
