"""Passing deletion requests on to the providers' deletion APIs (`cli_telemetry.sinks.Eraser`).

The collector forwarded an install's events to providers; when a deletion request forgets
that install (`forget`), each provider that has an eraser is owed the deletion: an
``erasures`` row per (provider, tool, install id), written in the transaction that applies
the request (`owe`), so a request that is acknowledged will reach the providers even if
the collector stops right after. A provider without an eraser (its deletion API needs a
secret that is not configured, or it has none) is named once when the collector starts.

An `ErasureForwarder` thread per collector process works as the event forwarder does
(`forward`): each eraser's due rows, oldest first, leased (`forward.lease`: several
processes on one PostgreSQL database take different rows, ``FOR UPDATE SKIP LOCKED``),
sent in one request with a hard deadline (`forward.SEND_SECONDS`) in a thread of its own
(`delivery.deliver`), then deleted once the provider accepted them or refused them for
good (logged once, with the provider's name and how many: never an install id). Otherwise
they wait, and the provider rests for a backoff (30 s doubling to an hour, at least its
``Retry-After``), whose count of attempts is kept on the rows so that a restarted process
goes on from it. A 413 sends the rows again in halves. The rows are never pruned: an
install id stays here until its provider has accepted its deletion, and only so long.

One race is closed on purpose: a forwarder may be sending an event of the install at the
moment it is forgotten (its ``outbox`` row was leased). Had the provider received the
deletion first, that event would arrive after it and stay. So the erasure for a provider
with such a row is due `AFTER_SENDS` later, when any send in flight has ended.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Collection, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..delivery import ANSWER_GRACE, backoff, deliver
from ..erasers.common import NOT_FOUND
from ..providers import Provider
from ..sinks.base import Delivery, Eraser
from .forward import BACKOFF_CAP, SEND_SECONDS, Contended, lease, refusals
from .tables import create, erasures, insert_rows

log = logging.getLogger("cli_telemetry.collector")

BATCH: Final = 100
"""Install ids per request: Amplitude's deletion API takes at most 100 at once."""
RECHECKS: Final = (3600.0, 6 * 3600.0, 24 * 3600.0)
"""When a provider said it holds nothing of some ids (`cli_telemetry.erasers.common.NOT_FOUND`),
it is asked again after these waits: it may still have been ingesting the install's last
events (an install disabled seconds after its first command is the common case), which it
would otherwise keep. After the last one, the rows go."""
CREDENTIAL_ERRORS: Final = frozenset({"http_401", "http_403", "http_404"})
"""A provider that refuses a deletion for these refuses our credentials or project (an
expired Mixpanel GDPR token, a rotated key), not the deletion: it is retried with the
backoff (up to its cap) and logged as an error, never dropped."""
AFTER_SENDS: Final = SEND_SECONDS + ANSWER_GRACE + 4.5
"""Seconds after which every send that was in flight when an install was forgotten has
ended: a send ends within `forward.SEND_SECONDS` (its hard deadline), with a margin for
building the sink and the clocks of several processes."""


def owe(
    connection: Connection,
    sinks: Sequence[str],
    installs: Sequence[tuple[str, str]],
    in_flight: Collection[str] = (),
) -> None:
    """In the transaction that applies deletion requests: owe each (tool, install id) of
    ``installs`` to each eraser of ``sinks``; due at once, or `AFTER_SENDS` from now for
    the providers in ``in_flight``. An erasure owed already is not owed twice."""
    if not (sinks and installs):
        return
    later = time.time() + AFTER_SENDS
    rows = [
        {"sink": sink, "tool": tool, "install_id": install_id,
         "not_before": later if sink in in_flight else 0.0, "attempts": 0}
        for sink in sorted(sinks)
        for tool, install_id in installs
    ]  # fmt: skip
    statement, parameters = insert_rows(connection, erasures, rows)
    connection.execute(
        statement.on_conflict_do_nothing(index_elements=["sink", "tool", "install_id"]),
        parameters,
    )


def erasers_of(providers: Sequence[Provider]) -> list[Eraser]:
    """The erasers among ``providers``: each one whose class has ``erase`` as well as
    ``send`` (a custom provider's deletion API, say) is built once more, as its eraser,
    with the same name. One that cannot be built is logged and left out."""
    found: list[Eraser] = []
    for provider in providers:
        try:
            built: Any = provider.build()
        except Exception as exc:
            log.warning("%s could not be built: %s", provider.name, type(exc).__name__)
            continue
        if isinstance(built, Eraser):
            found.append(built)
        else:
            built.close()
    return found


def waiting(engine: Engine) -> dict[str, int]:
    """How many erasures are owed to each provider."""
    with engine.connect() as connection:
        query = sa.select(erasures.c.sink, sa.func.count()).group_by(erasures.c.sink)
        return {sink: int(count) for sink, count in connection.execute(query)}


class _Courier:
    """An eraser as `delivery.deliver` sends to: a sink whose ``send`` erases the
    ``install_id`` of each item. ``busy`` while a call runs: one that outlived its
    deadline (an eraser that ignores it) is not called again until it returns."""

    def __init__(self, eraser: Eraser) -> None:
        self.name = eraser.name
        self.eraser = eraser
        self.busy = False

    def send(self, items: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        self.busy = True
        try:
            return self.eraser.erase([item["install_id"] for item in items], deadline)
        finally:
            self.busy = False

    def close(self) -> None:
        self.eraser.close()


class ErasureForwarder:
    """Sends each eraser the deletions it is owed, in a thread, until `stop`."""

    def __init__(
        self,
        engine: Engine,
        erasers: Sequence[Eraser],
        *,
        backoff_base: float = 30.0,
        idle_wait: float = 1.0,
    ) -> None:
        self.engine = engine
        self.couriers = [_Courier(eraser) for eraser in erasers]
        self.backoff_base = backoff_base
        self.idle_wait = idle_wait
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}  # time.monotonic() before which a provider rests
        self.batch_size: dict[str, int] = {}  # below BATCH after a provider answered 413
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    def start(self) -> None:
        create(self.engine)
        self._thread = threading.Thread(target=self._loop, name="erasure", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = SEND_SECONDS + 2) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for courier in self.couriers:
            try:
                courier.close()
            except Exception:
                log.exception("closing %s's eraser", courier.name)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = self.erase_once()
            except Exception:  # the database is away, say: try again later
                log.exception("erasing failed")
                busy = False
            if not busy:
                self._stopping.wait(self.idle_wait)

    def erase_once(self) -> bool:
        """One request to each eraser that is owed deletions; True if anything was sent."""
        sent = False
        for courier in self.couriers:
            if self._stopping.is_set():
                break
            sent |= self._erase(courier)
        return sent

    def _erase(self, courier: _Courier) -> bool:
        name = courier.name
        if courier.busy or time.monotonic() < self.retry_at.get(name, 0.0):
            return False
        try:
            rows = lease(self.engine, erasures, name, self.batch_size.get(name, BATCH))
        except Contended:
            return False
        if not rows:
            return False
        seqs = [row.seq for row in rows]
        ids = list(dict.fromkeys(row.install_id for row in rows))
        items = [{"install_id": install_id} for install_id in ids]
        result = deliver([(courier, items)], time.monotonic() + SEND_SECONDS)[name]
        mine = erasures.c.seq.in_(seqs)
        with self.engine.begin() as connection:
            if result.error == "http_413" and len(rows) > 1:
                self.batch_size[name] = max(1, len(rows) // 2)  # not a failure
                connection.execute(erasures.update().where(mine).values(not_before=0))
                return True
            credentials = result.outcome == "rejected" and result.error in CREDENTIAL_ERRORS
            if credentials:
                log.error(
                    "erasing at %s: %s: check its deletion credentials; the deletions wait",
                    name,
                    result.error,
                )
            if result.outcome == "retry" or credentials:
                attempts = max(row.attempts for row in rows)
                failures = max(self.failures.get(name, 0), attempts) + 1
                self.failures[name] = failures
                delay = backoff(
                    failures, result.retry_after, self._rng, base=self.backoff_base, cap=BACKOFF_CAP
                )
                self.retry_at[name] = time.monotonic() + delay
                connection.execute(
                    erasures.update()
                    .where(mine)
                    .values(not_before=time.time() + delay, attempts=erasures.c.attempts + 1)
                )
                log.warning("erasing at %s: %s; retrying in %.0f s", name, result.error, delay)
                return False
            self.failures.pop(name, None)
            self.retry_at.pop(name, None)
            asks = min(row.attempts for row in rows)
            if result.error == NOT_FOUND and asks < len(RECHECKS):
                connection.execute(
                    erasures.update()
                    .where(mine)
                    .values(not_before=time.time() + RECHECKS[asks], attempts=asks + 1)
                )
                return True
            connection.execute(erasures.delete().where(mine))
        if result.outcome == "rejected":
            log.warning("%s refused %d deletion requests: %s", name, len(ids), result.error)
        elif refused := refusals(result, len(ids)):
            log.warning(
                "%s refused %d of %d deletion requests: %s", name, refused, len(ids), result.error
            )
        return True
