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
left to delete). And for `REFUSE_FOR` after it, the install's events are refused
(`guard`): a batch still on its way when the install was forgotten, from an uploader that
``disable`` stopped mid-send or sent again by a proxy, is acknowledged and not stored. An
install id is never used again once forgotten (``disable`` deletes it, ``enable`` makes a
new one), so nothing that should be kept is refused.

Several collector processes may store a batch of an install's events and its deletion
request at the same moment, on one PostgreSQL database. Each transaction that stores or
forgets first takes one advisory lock (`FORGET_LOCK`, for the transaction: shared to
store, exclusive to forget), so a store and a deletion run one after the other: the
deletion that comes second finds the events and deletes them; the store that comes second
finds the install forgotten and refuses them. On SQLite one process writes, and one
transaction at a time.

The refusal keeps, for `REFUSE_FOR`, a one-way digest of the forgotten id
(``forgotten_installs``, `digest`): it can tell an id it is shown from the others, and
name none. Once that and the erasure rows are gone, the collector holds nothing that
names the install.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import erasure
from .removal import IDS_PER_STATEMENT, remove
from .tables import SCHEMA_LOCK, deletions, events, forgotten_installs, insert_rows

REFUSE_FOR: Final = 86400.0
"""Seconds for which a forgotten install's events are refused. What it guards against is
a batch in flight: an upload's timeouts are seconds, a proxy's resend minutes; a day is
ample, and short enough that the digest does not become a record of who left."""


def digest(install_id: str) -> str:
    """A one-way digest of an install id: install ids are random (122 bits), so it cannot
    be turned back into one, nor guessed."""
    return hashlib.sha256(install_id.encode()).hexdigest()


FORGET_LOCK: Final = SCHEMA_LOCK + 2
"""The PostgreSQL advisory lock that orders stores and deletions (see `guard`)."""

_ANY_FORGOTTEN: Final = "SELECT 1 FROM forgotten_installs LIMIT 1"
"""Asked through the driver: through SQLAlchemy the question cost more than its answer."""


def guard(
    connection: Connection,
    stored: Iterable[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
) -> set[str]:
    """Before a transaction stores ``stored`` and applies ``requests``: on PostgreSQL, take
    `FORGET_LOCK`, shared to store only, exclusive to forget (so stores run side by side,
    and a deletion runs after those under way and before the next); and return the ids of
    the events of ``stored`` whose install was forgotten in the last `REFUSE_FOR` seconds,
    which it must not store.

    One lock for every install, rather than one each: deletion requests are rare, and a
    lock per install cost ingest a fifth (100 installs a batch in `bench/collector.py`)."""
    installs: dict[tuple[str, str], list[str]] = {}
    for event in stored:
        installs.setdefault((event["tool"], event["install_id"]), []).append(event["event_id"])
    if connection.dialect.name == "postgresql" and (installs or requests):
        lock = "pg_advisory_xact_lock" if requests else "pg_advisory_xact_lock_shared"
        connection.exec_driver_sql(f"SELECT {lock}({FORGET_LOCK})")
    if not installs or connection.exec_driver_sql(_ANY_FORGOTTEN).first() is None:
        return set()  # (as almost always: none was forgotten in the last day)
    digests = {(tool, digest(install_id)): (tool, install_id) for tool, install_id in installs}
    refused: set[str] = set()
    names = sorted({name for _, name in digests})
    for start in range(0, len(names), IDS_PER_STATEMENT):
        found = connection.execute(
            sa.select(forgotten_installs.c.tool, forgotten_installs.c.install_digest).where(
                forgotten_installs.c.install_digest.in_(names[start : start + IDS_PER_STATEMENT]),
                forgotten_installs.c.until > time.time(),
            )
        )
        for key in found:
            if (install := digests.get(tuple(key))) is not None:
                refused.update(installs[install])
    return refused


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
    _refuse(connection, sorted(installs.items()))


def _refuse(connection: Connection, installs: Sequence[tuple[str, set[str]]]) -> None:
    """Refuse these installs' events for `REFUSE_FOR` from now (see `guard`), and let go of
    the installs whose time is over."""
    rows = [
        {"tool": tool, "install_digest": digest(install_id), "until": time.time() + REFUSE_FOR}
        for tool, ids in installs
        for install_id in ids
    ]
    rows.sort(key=lambda row: (row["tool"], row["install_digest"]))
    statement, parameters = insert_rows(connection, forgotten_installs, rows)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["tool", "install_digest"], set_={"until": statement.excluded.until}
        ),
        parameters,
    )
    let_go(connection)


def let_go(connection: Connection) -> int:
    """Delete the digests whose `REFUSE_FOR` is over (after each deletion request, and each
    retention round, `retention.Pruner`); returns how many."""
    over = sa.delete(forgotten_installs).where(forgotten_installs.c.until <= time.time())
    return connection.execute(over).rowcount
