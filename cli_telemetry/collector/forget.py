"""What a deletion request does in the collector's database.

``telemetry disable`` sends one (`cli_telemetry.events.DeletionRequest`): forget every
record of ``install_id`` for ``tool``. It arrives in an ordinary batch, and `storage.store`
hands the batch's requests here, in the transaction that stored the batch's events, after
them (so a batch that holds both leaves nothing of the install). For each request:

- every stored event of (tool, install id) is deleted, with its share of the rollups and
  what the ``outbox`` still owed the providers for it (`removal.remove`);
- the request is counted in ``deletions``, by its own ``event_id``, tool and day: the
  report says how many each tool got, and a resent request is counted once;
- a new request owes the deletion to each provider that has an eraser (`erasure.owe`),
  whose forwarder asks the provider's deletion API and then deletes the row.

A request is applied again whenever it arrives (the second time there is usually nothing
left to delete), so events of the install stored in between, say a batch that a proxy
sent again late, are forgotten too. Once the erasure rows are gone, the collector holds
nothing that names the install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import erasure
from .removal import IDS_PER_STATEMENT, remove
from .tables import deletions, events, insert_rows


def forget(
    connection: Connection, requests: Sequence[dict[str, Any]], erase_at: Sequence[str] = ()
) -> None:
    """Apply validated deletion requests in the caller's transaction; each new one is owed
    to the erasers named in ``erase_at``."""
    if not requests:
        return
    installs: dict[str, set[str]] = {}
    for request in requests:
        installs.setdefault(request["tool"], set()).add(request["install_id"])
    in_flight: set[str] = set()
    known: set[tuple[str, str]] = set()  # installs of which something was stored
    for tool, ids in sorted(installs.items()):  # one order: concurrent writers never deadlock
        ordered = sorted(ids)
        for start in range(0, len(ordered), IDS_PER_STATEMENT):
            chunk = ordered[start : start + IDS_PER_STATEMENT]
            where = [events.c.tool == tool, events.c.install_id.in_(chunk)]
            found = sa.select(events.c.install_id).where(*where).distinct()
            known |= {(tool, install_id) for (install_id,) in connection.execute(found)}
            removed = remove(connection, where)
            in_flight |= removed.in_flight
    unique = {request["event_id"]: request for request in requests}
    rows = [
        {"event_id": event_id, "tool": request["tool"], "day": request["timestamp"][:10]}
        for event_id, request in sorted(unique.items())
    ]
    statement, parameters = insert_rows(connection, deletions, rows)
    statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
    new = {
        event_id
        for (event_id,) in connection.execute(
            statement.returning(deletions.c.event_id), parameters
        ).all()
    }
    # Only an install this collector stored events of can be at a provider through it: a
    # request for any other id (anyone holding a tool's write token can send one) owes
    # the providers nothing, and cannot use up their deletion quotas.
    owed = sorted({(unique[i]["tool"], unique[i]["install_id"]) for i in new} & known)
    erasure.owe(connection, erase_at, owed, in_flight)
