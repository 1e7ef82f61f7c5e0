"""The messages of the output topics: which topic, key, value and headers a score, alert or dead letter becomes.

One encoding for every producer of outputs: the worker (through faust's producer) and the Kafka output sink
(``connectors/kafka/output_sink.py``, used by the sink agent for its dead letters). Keys are the asset id (the
asset's partition, as on the inputs) or, for a dead letter, its source coordinates. Scores and alerts carry a
deterministic ``fusewatch-id`` header that consumers deduplicate on, so a message repeated after a restart is an
exact copy of the first.

>>> from fusewatch.core.events import DeadLetter
>>> letter = DeadLetter(source_topic="fusewatch.vibration", partition=2, offset=41, error="late",
...                     raw_base64="", ts=0)
>>> message = output_message(letter, Topics())
>>> message.topic, message.key, message.headers[-1]
('fusewatch.dead-letter', b'fusewatch.vibration|2|41', ('reason', b'late'))
"""

from __future__ import annotations

from dataclasses import dataclass

from fusewatch.core.events import Alert, DeadLetter, Score
from fusewatch.core.topics import Topics

OutputRecord = Score | Alert | DeadLetter
"""What the stream processors produce onto the output topics."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for an output topic, with the id consumers deduplicate on."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def output_message(record: OutputRecord, topics: Topics) -> OutgoingMessage:
    """The message ``record`` becomes on its output topic."""
    if isinstance(record, Score):
        ident = f"{record.asset_id}|{record.window_end}|{record.run_id}"
        return OutgoingMessage(topics.scores, record.asset_id.encode(), record.model_dump_json().encode(),
                               (("fusewatch-id", ident.encode()),))
    if isinstance(record, Alert):
        ident = f"{record.alert_id}|{record.transition}|{record.ts}"
        return OutgoingMessage(topics.alerts, record.asset_id.encode(), record.model_dump_json().encode(),
                               (("fusewatch-id", ident.encode()),))
    headers = (
        ("source-topic", record.source_topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
        ("reason", record.error.encode()[:1000]),
    )
    key = f"{record.source_topic}|{record.partition}|{record.offset}".encode()
    return OutgoingMessage(topics.dead_letter, key, record.model_dump_json().encode(), headers)
