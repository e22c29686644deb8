"""Forwarding what the collector stores to analytics providers (PostHog, Segment, ...).

A tool ships one endpoint, its own collector; the collector's environment says where the
events go next (`cli_telemetry.providers.from_environ`), so the author changes providers
without a release of the tool, and the providers' keys stay on the server.

An ``outbox`` row per (provider, event) is written in the same transaction that stores the
event, so an event that is stored will be forwarded, even if the collector stops right
after. A forwarder thread per collector process sends each provider its rows, oldest
first, in batches: delivered or refused for good, the rows go (a provider that takes a
batch but refuses some of its events has all it will ever take: those rows go too, and the
refusal is logged once per batch, with the provider's name and how many); otherwise they
wait, leased
until a backoff ends, and the provider rests until then: the rows behind them are not tried
meanwhile, so a provider that is down gets one request per backoff, not one per batch it is
owed. A batch too large for a provider (413) is sent again in halves, not dropped. Leases
(not locks held while sending) let several collector processes behind a load balancer
forward from the same database without sending a batch twice at once, each taking batches
the others have not leased (`lease`); a batch resent after a crash carries the
same ``event_id``s, which every provider de-duplicates.

Each send has a hard deadline (`SEND_SECONDS`): every built-in provider's request is cut
short at it, its socket shut down and its thread ended, however slowly the provider's
server answers (`cli_telemetry.sinks.http`), so a provider that drips its answers costs the
collector neither threads nor sockets. Only a custom provider that ignores its deadline
leaves its thread behind (`deliver` stops waiting for it); that object is then left to it
and a new one built, at most once per backoff.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..delivery import backoff, deliver
from ..providers import Provider
from ..sinks.base import Delivery, Sink
from .tables import create, events, outbox

log = logging.getLogger("cli_telemetry.collector")

BATCH: Final = 100
SEND_SECONDS: Final = 10.0
LEASE_SECONDS: Final = 120.0
"""Longer than a send may take: a lease that runs out belonged to a process that died."""
BACKOFF_CAP: Final = 3600.0


def enqueue(connection: Connection, sinks: Sequence[str], event_ids: Sequence[str]) -> None:
    """In the storing transaction: owe each new event to each provider."""
    if sinks and event_ids:
        connection.execute(
            outbox.insert(),
            [{"sink": sink, "event_id": event_id} for sink in sinks for event_id in event_ids],
        )


class Forwarder:
    """Sends each provider what it is owed, in a thread, until `stop`."""

    def __init__(
        self,
        engine: Engine,
        providers: Sequence[Provider],
        *,
        backoff_base: float = 30.0,
        idle_wait: float = 1.0,
    ) -> None:
        self.engine = engine
        self.providers = list(providers)
        self.backoff_base = backoff_base
        self.idle_wait = idle_wait
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}  # time.monotonic() before which a provider rests
        self.batch_size: dict[str, int] = {}  # below BATCH after a provider answered 413
        self._sinks: dict[str, Sink] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    def start(self) -> None:
        create(self.engine)
        self._thread = threading.Thread(target=self._loop, name="forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = SEND_SECONDS + 2) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for sink in self._sinks.values():
            try:
                sink.close()
            except Exception:
                log.exception("closing %s", sink.name)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.forward_once()
            except Exception:  # the database is away, say: try again later
                log.exception("forwarding failed")
                busy = False
            if not busy:
                self._stopping.wait(self.idle_wait)

    def forward_once(self) -> bool:
        """One batch to each provider that is owed events; True if anything was sent."""
        sent = False
        for provider in self.providers:
            if self._stopping.is_set():
                break
            sent |= self._forward(provider)
        return sent

    def _forward(self, provider: Provider) -> bool:
        if time.monotonic() < self.retry_at.get(provider.name, 0.0):
            return False
        try:
            rows = lease(
                self.engine, outbox, provider.name, self.batch_size.get(provider.name, BATCH)
            )
        except Contended:
            return False
        if not rows:
            return False
        seqs = [row.seq for row in rows]
        with self.engine.connect() as connection:
            found = dict(
                connection.execute(
                    sa.select(events.c.event_id, events.c.data).where(
                        events.c.event_id.in_([row.event_id for row in rows])
                    )
                ).all()
            )
        batch = [json.loads(found[row.event_id]) for row in rows if row.event_id in found]
        result = self._send(provider, batch) if batch else Delivery("delivered")
        with self.engine.begin() as connection:
            if result.error == "http_413" and len(batch) > 1:
                self.batch_size[provider.name] = max(1, len(rows) // 2)  # not a failure
                connection.execute(
                    outbox.update()
                    .where(outbox.c.sink == provider.name, outbox.c.seq.in_(seqs))
                    .values(not_before=0)
                )
                return True
            if result.outcome == "retry":
                failures = self.failures.get(provider.name, 0) + 1
                self.failures[provider.name] = failures
                delay = backoff(
                    failures, result.retry_after, self._rng, base=self.backoff_base, cap=BACKOFF_CAP
                )
                self.retry_at[provider.name] = time.monotonic() + delay
                connection.execute(
                    outbox.update()
                    .where(outbox.c.sink == provider.name, outbox.c.seq.in_(seqs))
                    .values(not_before=time.time() + delay)
                )
                log.warning(
                    "forwarding to %s: %s; retrying in %.0f s", provider.name, result.error, delay
                )
                return False
            self.failures.pop(provider.name, None)
            self.retry_at.pop(provider.name, None)
            connection.execute(outbox.delete().where(outbox.c.seq.in_(seqs)))
        if result.outcome == "rejected":
            log.warning("%s refused %d events: %s", provider.name, len(batch), result.error)
        elif refused := refusals(result, len(batch)):
            log.warning(
                "%s refused %d of %d events: %s", provider.name, refused, len(batch), result.error
            )
        return True

    def _send(self, provider: Provider, batch: list[dict[str, Any]]) -> Delivery:
        try:
            sink = self._sinks.get(provider.name)
            if sink is None:
                sink = self._sinks[provider.name] = provider.build()
        except Exception as exc:  # a provider that cannot be built fails alone
            return Delivery("retry", f"load_error:{type(exc).__name__}")
        # In a thread of its own, bounded: a provider that raises or hangs fails alone.
        results = deliver([(sink, batch)], time.monotonic() + SEND_SECONDS)
        if sink.name in results.unanswered:
            # Its thread may still be sending (a custom provider that ignores its deadline):
            # leave that object to it, and build a new one for the next attempt (a provider
            # need not be safe to share by threads).
            del self._sinks[provider.name]
        return results[sink.name]


def refusals(result: Delivery, count: int) -> int:
    """How many of a delivered batch of ``count`` events the provider refused: those it
    named (by an index of the batch) and those it only counted."""
    named = sum(1 for index in result.refused if 0 <= index < count)
    return min(count, named + result.unattributed)


def lease(engine: Engine, table: sa.Table, name: str, limit: int) -> list[Any]:
    """The ``limit`` oldest rows of an outbox (``outbox``, or ``erasures``) owed to ``name``
    and due, leased to this process: each row's ``not_before`` is moved `LEASE_SECONDS`
    ahead. Raises `Contended` when another process leased some of them first.

    On PostgreSQL the rows are locked as they are read, skipping those another
    process's lease transaction holds (``FOR UPDATE SKIP LOCKED``): forwarders of
    several processes that look at once take different batches. Without it both read
    the same rows, one leased them and the other found them taken, leased nothing and
    rested (`Forwarder.idle_wait`): four forwarders (threads of one process) on 5,000 rows
    owed to a provider that answers in 20 ms collided 3 to 5 times and took 1.2 to 1.6 s;
    skipping, 0.6 to 0.8 s, here. SQLite has no row locks (one writer at a time):
    there the count of rows updated tells."""
    now = time.time()
    with engine.begin() as connection:
        rows = connection.execute(
            sa.select(table)
            .where(table.c.sink == name, table.c.not_before <= now)
            .order_by(table.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            leased = connection.execute(
                table.update()
                .where(table.c.seq.in_([row.seq for row in rows]), table.c.not_before <= now)
                .values(not_before=now + LEASE_SECONDS)
            ).rowcount
            if leased != len(rows):
                # Another process leased some of them first (SQLite): take none.
                raise Contended
    return list(rows)


class Contended(Exception):
    """Another process leased some of the rows first."""
