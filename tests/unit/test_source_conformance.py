"""Every source passes the same checks (docs/sources.md): it is a :class:`~connectors.sources.base.Source`; its
messages are keyed by asset id and decode with the wire codec into the topic they name, at the event time they
carry; event time never decreases within an (asset, modality) stream, nor across streams in a bounded source; a
bounded source ends and a live one stops once closed; a deterministic source reads the same twice; ``close()`` may
be called any number of times; a registry, when there is one, covers every asset. Histories (recordings, Kafka
time ranges) also give the same messages with their Kafka coordinates.

Adding a source: its module, and one :class:`Case` line in :data:`CASES` (with a context manager that prepares
what the source reads, if anything, and yields a function opening a fresh source).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from connectors.sources.base import History, Source, SourceMessage, from_recorded
from connectors.sources.recording import RecordingHistory, RecordingWriter
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from connectors.sources.simulator.semi_real import SemiRealConfig, SemiRealPlant
from fusewatch.core.codec import decode
from fusewatch.core.history import RecordedMessage, TopicKind
from fusewatch.core.topics import Topics

LIMIT = 100_000  # a bounded source here ends well before this many messages
LIVE_SAMPLE = 200  # messages read from a live source before it is closed ...
QUIET_S = 5.0  # ... or once none came for this long
STOP_S = 120.0  # what a source may take to yield its first message, or to end once closed
# two assets for a day in half-hour steps, small snapshots and frames: 195 messages of all three kinds
SMALL = SimulatorConfig(assets=2, days=1.0, seed=0, sample_rate_hz=2_000.0, snapshot_seconds=0.05,
                        snapshot_interval_s=1800.0, frame_interval_s=1800.0, frame_size=16)

Opener = Callable[[Path], AbstractContextManager[Callable[[], Source]]]


@dataclass(frozen=True)
class Case:
    """One source under test: how to open it, and what kind of source it is."""

    name: str
    opener: Opener
    bounded: bool = True
    deterministic: bool = True
    history: bool = False
    marks: tuple[pytest.MarkDecorator, ...] = ()


@contextmanager
def simulated(directory: Path) -> Iterator[Callable[[], Source]]:
    yield lambda: PlantSimulator(SMALL)


@contextmanager
def semi_real(directory: Path) -> Iterator[Callable[[], Source]]:
    yield lambda: SemiRealPlant(SemiRealConfig(assets=2, days=0.01, seed=3, faulty=1))


def recorded_messages(source: Source, partitions: int) -> list[RecordedMessage]:
    """The messages of ``source`` as ``partitions`` co-partitioned input topics would hold them."""
    assets: dict[bytes | None, int] = {}
    offsets: dict[tuple[TopicKind, int], int] = {}
    out = []
    for message in source.messages():
        partition = assets.setdefault(message.key, len(assets)) % partitions
        offset = offsets.get((message.kind, partition), 0)
        offsets[(message.kind, partition)] = offset + 1
        out.append(RecordedMessage(message.kind, partition, offset, message.timestamp_ms, message.key,
                                   message.value))
    return out


@contextmanager
def recording(directory: Path) -> Iterator[Callable[[], Source]]:
    messages = recorded_messages(PlantSimulator(SMALL), partitions=2)
    ranges: dict[tuple[TopicKind, int], tuple[int, int]] = {}
    for m in messages:
        ranges[(m.kind, m.partition)] = (0, m.offset + 1)
    writer = RecordingWriter(directory / "rec", {"test": "conformance"}, None, None, ranges, part_messages=25)
    for message in sorted(messages, key=lambda m: (m.kind, m.partition, m.offset)):
        writer.add(message)
    writer.finish()
    yield lambda: RecordingHistory(directory / "rec")


@contextmanager
def kafka_range(directory: Path) -> Iterator[Callable[[], Source]]:
    from connectors.kafka.admin import create_topics, delete_topics, topic_names
    from connectors.kafka.history import KafkaHistory
    from connectors.kafka.producer import EventProducer
    from connectors.kafka.publish import publish
    from connectors.kafka.simulate import default_start_ns
    from fusewatch.core.kafka_settings import KafkaSettings
    from tests.integration.conftest import KAFKA, unique_prefix

    settings = KafkaSettings(bootstrap_servers=KAFKA, timeout_s=10.0, topic_prefix=unique_prefix(), partitions=2)
    create_topics(settings)
    try:
        start = default_start_ns(time.time_ns(), SMALL.days, None, SMALL.snapshot_interval_s)  # the broker keeps 7 days
        with EventProducer(settings) as producer:
            publish(PlantSimulator(SimulatorConfig(**{**SMALL.__dict__, "start_ns": start})), producer, None,
                    progress=False)
        yield lambda: KafkaHistory(settings, None, None)
    finally:
        delete_topics(settings, topic_names(settings))


CASES = [
    Case("simulator", simulated),
    Case("semi-real", semi_real, marks=(pytest.mark.realdata,)),
    Case("recording", recording, history=True),
    Case("kafka-range", kafka_range, history=True, marks=(pytest.mark.integration,)),
]


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.name, marks=case.marks) for case in cases]


@dataclass(frozen=True)
class Opened:
    case: Case
    open: Callable[[], Source]


@pytest.fixture(scope="module", params=params(CASES))
def opened(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    case: Case = request.param
    with case.opener(tmp_path_factory.mktemp(case.name)) as open_source:
        yield Opened(case, open_source)


class Reader:
    """Reads a source's messages in a thread of its own, so that a live source can be closed while it waits."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.messages: list[SourceMessage] = []
        self.failures: list[BaseException] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for message in self.source.messages():
                self.messages.append(message)
        except BaseException as exc:  # reported in the test's thread
            self.failures.append(exc)
        finally:
            self.done.set()

    def wait_for(self, count: int, quiet_s: float = QUIET_S) -> None:
        """Until ``count`` messages came, the source ended, or nothing came for ``quiet_s``."""
        seen, since = -1, time.monotonic()
        while len(self.messages) < count and not self.done.is_set():
            if len(self.messages) != seen:
                seen, since = len(self.messages), time.monotonic()
            elif time.monotonic() - since > quiet_s:
                return
            time.sleep(0.01)

    def stop(self, name: str) -> None:
        """Close the source; its messages must end soon after."""
        self.source.close()
        assert self.done.wait(STOP_S), f"{name}: messages() still running {STOP_S:g} s after close()"
        self._thread.join()
        assert not self.failures, self.failures


def read(opened: Opened) -> list[SourceMessage]:
    """Every message of a bounded source (it must end), or the first ones of a live source (then closed)."""
    name = opened.case.name
    if opened.case.bounded:
        with closing(opened.open()) as source:
            messages = list(islice(source.messages(), LIMIT + 1))
        assert len(messages) <= LIMIT, f"{name}: a bounded source did not end"
    else:
        reader = Reader(opened.open())
        reader.wait_for(LIVE_SAMPLE)
        reader.stop(name)
        messages = reader.messages[:LIVE_SAMPLE]
    assert messages, f"{name}: no messages"
    return messages


def test_it_is_a_source_that_describes_itself(opened: Opened) -> None:
    with closing(opened.open()) as source:
        assert isinstance(source, Source)
        assert isinstance(source.description, str) and source.description.strip()
        assert "\n" not in source.description


def test_messages_are_keyed_by_asset_and_decode_into_the_topic_they_name(opened: Opened) -> None:
    kinds = Topics(prefix="")
    for message in read(opened):
        event = decode(message.value)
        assert message.key == event.asset_id.encode()
        assert kinds.for_event(event) == message.kind
        assert message.timestamp_ms == event.ts // 1_000_000  # the event time, at least to the millisecond
        assert message.partition is None or message.partition >= 0


def test_event_time_never_decreases_within_a_stream(opened: Opened) -> None:
    messages = read(opened)
    last: dict[tuple[bytes | None, str], int] = {}
    for message in messages:
        stream = (message.key, message.kind)
        assert message.ts_ns >= last.get(stream, message.ts_ns), f"{stream} went back in time"
        last[stream] = message.ts_ns
    if opened.case.bounded:  # merged by event time, so it can be paced
        stamps = [message.ts_ns for message in messages]
        assert stamps == sorted(stamps)


def test_it_ends_or_stops_once_closed(opened: Opened) -> None:
    reader = Reader(opened.open())
    reader.wait_for(1, quiet_s=STOP_S)
    assert reader.messages, f"{opened.case.name}: no message within {STOP_S:g} s"
    reader.stop(opened.case.name)  # a bounded source has ended by itself, or ends now


@pytest.mark.parametrize("opened", params([c for c in CASES if c.deterministic]), indirect=True)
def test_a_deterministic_source_reads_the_same_twice(opened: Opened) -> None:
    assert read(opened) == read(opened)


def test_close_may_be_called_any_number_of_times(opened: Opened) -> None:
    source = opened.open()
    source.close()
    source.close()
    source = opened.open()
    messages = source.messages()
    next(messages)
    source.close()
    source.close()


def test_a_registry_covers_every_asset_of_the_messages(opened: Opened) -> None:
    with closing(opened.open()) as source:
        registry = source.asset_registry()
        assets = {message.key.decode() for message in read(opened) if message.key is not None}
        if registry is not None:
            assert all(asset in registry for asset in assets), sorted(asset for asset in assets
                                                                        if asset not in registry)


@pytest.mark.parametrize("opened", params([c for c in CASES if c.history]), indirect=True)
def test_a_history_gives_the_same_messages_with_their_kafka_coordinates(opened: Opened) -> None:
    with closing(opened.open()) as source:
        assert isinstance(source, History)
        recorded = list(source.recorded())
        assert [from_recorded(message) for message in recorded] == read(opened)
        assert source.count() >= len(recorded)
        positions = [(m.kind, m.partition, m.offset) for m in recorded]
        assert len(set(positions)) == len(positions)
