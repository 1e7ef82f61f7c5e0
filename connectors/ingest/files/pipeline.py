"""One import: events of a reader, through an optional transform, in event-time order into a target.

The events are spooled first (:class:`~connectors.ingest.files.targets.TimeOrderSpool`), so a strict import that
stops at a problem writes nothing, and the target receives every partition's messages in time order. The
summary counts what was imported, per modality and asset, and the problems.

>>> import tempfile
>>> from connectors.ingest.files.targets import RecordingTarget
>>> from fusewatch.core.events import MaintenanceLog, make_event
>>> entry = make_event(MaintenanceLog, asset_id="pump-01", ts="2026-01-05T06:00:00Z", text="bearing noise")
>>> with tempfile.TemporaryDirectory() as folder:
...     target = RecordingTarget(Path(folder) / "rec", partitions=2, source={"import": "doctest"})
...     summary = run_import([entry], target, ProblemReport(), progress=False)
>>> summary.lines()[0]
'imported 1 events (maintenance-logs 1) of 1 asset(s) from 2026-01-05T06:00:00Z to 2026-01-05T06:00:00Z'
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from connectors.ingest.files.problems import ProblemReport
from connectors.ingest.files.targets import SpoolEntry, Target, TimeOrderSpool
from connectors.sources.base import message_of
from fusewatch.core.codec import InputEvent
from fusewatch.core.timeutil import format_time

Transform = Callable[[InputEvent], InputEvent]
"""What may change each event before it reaches the target (e.g. features computed at the edge)."""


@dataclass
class ImportSummary:
    """What an import did: events per topic kind and per asset, their time span, problems, the target's figures."""

    target: str
    problems: ProblemReport
    events: Counter[str] = field(default_factory=Counter)
    assets: Counter[str] = field(default_factory=Counter)
    first_ns: int | None = None
    last_ns: int | None = None
    input_bytes: int = 0
    kept: int = 0
    delivered: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.events.values())

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.events.items()))
        span = (f" from {format_time(self.first_ns)} to {format_time(self.last_ns)}"
                if self.first_ns is not None and self.last_ns is not None else "")
        lines = [f"imported {self.total} events ({kinds or 'none'}) of {len(self.assets)} asset(s){span}"]
        if self.kept:
            lines.append(f"kept the {self.kept} messages the target held already (merged in event-time order)")
        lines.append(f"into {self.target}: " + ", ".join(f"{k} {v}" for k, v in self.delivered.items()
                                                        if not isinstance(v, dict)))
        lines.append(f"{self.problems.count} problem(s)" + (":" if self.problems.count else ""))
        return lines


def reading_bar(paths: Sequence[Path], enabled: bool) -> Any:
    """A progress bar over the bytes of ``paths`` (its ``update`` is the readers' progress callback)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="reading", disable=not enabled)


def run_import(events: Iterable[InputEvent], target: Target, report: ProblemReport,
               transform: Transform | None = None, progress: bool = True) -> ImportSummary:
    """Spool ``events`` (each through ``transform``), then deliver them to ``target`` in event-time order.

    Problems are the readers' (``report``); with a strict report the first one raises and nothing is delivered.
    """
    started = time.monotonic()
    summary = ImportSummary(target.description, report)
    with TimeOrderSpool(target.spool_folder()) as spool:
        target.preload(spool)
        summary.kept = len(spool)
        for event in events:
            if transform is not None:
                event = transform(event)
            message = message_of(event)
            spool.add(SpoolEntry(message.kind, message.key or b"", message.ts_ns, message.value))
            summary.events[message.kind] += 1
            summary.assets[event.asset_id] += 1
            summary.input_bytes += len(message.value)
            summary.first_ns = message.ts_ns if summary.first_ns is None else min(summary.first_ns, message.ts_ns)
            summary.last_ns = message.ts_ns if summary.last_ns is None else max(summary.last_ns, message.ts_ns)
        if summary.total:
            summary.delivered = target.deliver(spool, progress)
        else:
            summary.delivered = {"messages": 0}
    summary.seconds = time.monotonic() - started
    return summary
