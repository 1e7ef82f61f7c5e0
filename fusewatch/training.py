"""Fleet training: a model bundle learned from recorded history (``fusewatch train``).

What a bundle learned here holds:

- ``text-model.json``: the **fleet text model**, one :class:`~models.text.LogSeverityModel` trained on every
  maintenance-log entry of every asset that a technician labelled (``symptom`` and ``failure`` positive;
  ``inspection``, ``note`` and ``repair`` negative), in event-time order. A processor with the bundle scores every
  asset's entries with it from the first entry on, and it goes on learning online
  (:class:`streams.stages.logs.LogStage`).

The entries are taken in the order of their event time (then asset and text), not in the order a recording or a
topic's partitions hold them, so the same history gives the same bundle wherever it was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fusewatch.core.codec import decode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import MaintenanceLog
from fusewatch.core.history import RecordedMessage
from models.bundle import Bundle, write_bundle
from models.text import TEXT_MODEL_FILE, LogSeverityModel


@dataclass
class TrainingInput:
    """What training read: the log entries (sorted), and how many messages it read or could not decode."""

    entries: list[MaintenanceLog] = field(default_factory=list)
    messages: int = 0
    invalid: int = 0

    @property
    def labelled(self) -> int:
        return sum(entry.kind is not None for entry in self.entries)


def read_history(messages: Iterable[RecordedMessage], total: int | None = None, progress: bool = True) -> TrainingInput:
    """The maintenance-log entries of ``messages`` in event-time order (a message that does not decode is
    counted and skipped: the worker dead-letters it too)."""
    read = TrainingInput()
    for message in tqdm(messages, total=total, unit="msg", desc="reading history", disable=not progress):
        read.messages += 1
        if message.kind != "maintenance-logs":
            continue
        try:
            event = decode(message.value)
        except InvalidEventError:
            read.invalid += 1
            continue
        if isinstance(event, MaintenanceLog):
            read.entries.append(event)
    read.entries.sort(key=lambda entry: (entry.ts, entry.asset_id, entry.text))
    return read


def train_text_model(entries: Iterable[MaintenanceLog]) -> LogSeverityModel:
    """The fleet text model: one severity model over every labelled entry, in the given order.

    >>> entries = [MaintenanceLog(asset_id=f"pump-0{i}", ts=i, text=text, kind=kind) for i, (text, kind) in
    ...            enumerate([("pump cavitating badly", "symptom"), ("routine check ok", "inspection")] * 30)]
    >>> model = train_text_model(entries)
    >>> model.score_one("cavitating again") > model.score_one("routine check")
    True
    """
    model = LogSeverityModel()
    for entry in entries:
        model.learn_one(entry.text, entry.kind)
    return model


def train_bundle(read: TrainingInput, out: Path, version: str, description: str = "",
                 made_from: dict[str, Any] | None = None) -> Bundle:
    """Train every part of a bundle from what :func:`read_history` read, and write it to ``out``."""
    model = train_text_model(read.entries)
    origin = {**(made_from or {}), "messages": read.messages, "log_entries": len(read.entries),
              "labelled_entries": read.labelled, "invalid_messages": read.invalid,
              "text_model": {"positives": model.positives, "negatives": model.negatives}}
    return write_bundle(out, version, {TEXT_MODEL_FILE: model.to_json()}, description=description,
                        made_from=origin)
