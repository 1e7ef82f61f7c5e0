"""The one interface of every sink: ``add`` per record, ``flush`` to make it durable, ``close``, ``discard``.

A sink buffers what it is given and writes it on :meth:`Sink.flush`, which returns only once the target holds
every record added so far (the sink agent commits its Kafka offsets after it, the embedded demo reports its
batch done). When the target cannot take writes now (down, overloaded, locked), ``flush`` raises
:class:`~fusewatch.core.errors.SinkBackpressureError` (or its subclass ``SinkUnavailableError``) and keeps every
record: the caller pauses and flushes again later, nothing is dropped. When the target refuses the data itself,
``flush`` raises :class:`~fusewatch.core.errors.SinkRejectedError` and empties its buffer (retrying the same data
cannot succeed; the caller adds again what it wants to retry, e.g. record by record to find the refused one).

The records are the events of :mod:`fusewatch.core.events` that leave the system: scores, alert transitions,
dead letters and maintenance-log entries (dashboards annotate them). Each sink says in ``kinds`` which of them it
stores; it ignores the others, so one stream of records can go to every sink unfiltered.

Writes are idempotent: every record has a deterministic identity in the target (a primary key, an InfluxDB
point's series and time, a Kafka message's ``fusewatch-id``), so adding a record again after a crash or a replay
leaves the target as its readers saw it. ``docs/sinks.md`` describes the implementations, and
``tests/integration/test_sink_conformance.py`` checks every one of them the same way.

>>> from fusewatch.core.events import DeadLetter
>>> letter = DeadLetter(source_topic="fusewatch.vibration", partition=0, offset=7, error="late",
...                     raw_base64="", ts=0)
>>> kind_of(letter), sorted(kind.__name__ for kind in RECORD_KINDS)
('dead_letter', ['Alert', 'DeadLetter', 'MaintenanceLog', 'Score'])
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from fusewatch.core.events import Alert, DeadLetter, MaintenanceLog, Score
from fusewatch.core.outputs import OutputRecord

Record = OutputRecord | MaintenanceLog
"""What a sink is given: a score, an alert transition, a dead letter or a maintenance-log entry."""
RecordKind = type[Score] | type[Alert] | type[DeadLetter] | type[MaintenanceLog]
RECORD_KINDS: frozenset[RecordKind] = frozenset({Score, Alert, DeadLetter, MaintenanceLog})
_NAMES: dict[RecordKind, str] = {Score: "score", Alert: "alert", DeadLetter: "dead_letter", MaintenanceLog: "log"}


def kind_of(record: Record) -> str:
    """A record's kind as a short name: ``score``, ``alert``, ``dead_letter`` or ``log``."""
    return _NAMES[type(record)]


class Sink(Protocol):
    """Where records go. Methods are called from one thread at a time.

    ``kinds``
        The record types the sink stores; :meth:`add` ignores the others.
    :meth:`add`
        Buffer one record (a sink may flush by itself when its buffer is full; it then raises as ``flush``).
    :meth:`flush`
        Write everything buffered; when it returns the target holds it. Raises ``SinkBackpressureError``
        (buffer kept) or ``SinkRejectedError`` (buffer emptied). Does nothing, and needs no target, when
        nothing is buffered.
    :meth:`discard`
        Forget what is buffered and not yet written: the caller will add it again (e.g. it stops during an
        outage and the records stay uncommitted in Kafka).
    :meth:`close`
        Flush, then release the target's connections or files. If that last flush raises, the connections are
        released all the same and what was not written is lost with the sink: flush (waiting out back-pressure)
        before closing when it matters. Closing again does nothing.
    """

    kinds: ClassVar[frozenset[RecordKind]]

    def add(self, record: Record) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...

    def close(self) -> None: ...
