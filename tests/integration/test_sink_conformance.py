"""Every sink passes the same checks against its real target (docs/sinks.md).

SQLite on a file, InfluxDB v1 on a real InfluxDB 1.6 server, InfluxDB v2 on the stand-in that checks the v2 wire
contract (no 2.x server runs here), Kafka on the real broker. Each check runs once per entry of ``BACKENDS``: a
new sink is checked by adding its harness (tests/integration/sink_harnesses.py) to that list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from connectors.sinks.base import RECORD_KINDS, Record, Sink
from fusewatch.core.errors import SinkBackpressureError
from fusewatch.core.events import Alert, DeadLetter, MaintenanceLog, Score, make_event
from fusewatch.core.timeutil import NS_PER_MIN, parse_time
from tests.integration.sink_harnesses import (
    Harness,
    InfluxV1Harness,
    InfluxV2Harness,
    KafkaHarness,
    SqliteHarness,
    fingerprint,
)
from tests.integration.sinks import PrivateInfluxDB

pytestmark = pytest.mark.integration

BACKENDS = [
    pytest.param(SqliteHarness, id="sqlite"),
    pytest.param(InfluxV1Harness, id="influxdb-v1"),
    pytest.param(InfluxV2Harness, id="influxdb-v2"),
    pytest.param(KafkaHarness, id="kafka"),
]

T0 = parse_time("2026-11-30T00:00:00Z")


def _score(asset: str, minute: int, fused: float, features: dict[str, float]) -> Score:
    return make_event(
        Score, asset_id=asset, window_start=T0 + (minute - 1) * NS_PER_MIN, window_end=T0 + minute * NS_PER_MIN,
        fused=fused, calibrated={"vibration": 0.9}, raw={"vibration": 4.5}, contributions={"vibration": fused},
        present={"vibration": True, "camera": False, "logs": False}, leading="vibration",
        top_features=[("kurtosis", 3.2)], warmup=False, model_version="0.1.0+fisher", run_id="conformance",
        features=features,
    )  # fmt: skip


def _alert(transition: str, minute: int, fused: float) -> Alert:
    return make_event(
        Alert, alert_id="pump-1:conformance:1", asset_id="pump-1", ts=T0 + minute * NS_PER_MIN,
        transition=transition, severity="warning", fused=fused, contributions={"vibration": fused},
        leading="vibration", top_features=[("kurtosis", 3.2)], opened_at=T0 + 2 * NS_PER_MIN, run_id="conformance",
    )  # fmt: skip


RECORDS: list[Record] = [
    _score("pump-1", 1, 0.125, {"kurtosis": 3.0, "env_bpfo": 0.5}),
    _score("pump-1", 2, 0.75, {"kurtosis": 9.5, "env_bpfo": 2.25}),
    _score("motor-2", 1, 0.0625, {}),
    _alert("opened", 2, 0.75),
    _alert("closed", 3, 0.25),
    make_event(DeadLetter, source_topic="fusewatch.vibration", partition=1, offset=41, error="late",
               raw_base64="RlcB", ts=T0),
    make_event(DeadLetter, source_topic="fusewatch.frames", partition=0, offset=7,
               error="invalid: <message>: not a fusewatch message", raw_base64="", ts=T0 + NS_PER_MIN),
    make_event(MaintenanceLog, asset_id="pump-1", ts=T0 + 90 * 10**9, text='bearing "DE" noisy, greased',
               author="ana", kind="symptom"),
    make_event(MaintenanceLog, asset_id="motor-2", ts=T0 + 150 * 10**9, text="inspection done"),
]


@pytest.fixture(scope="module")
def private_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInfluxDB]:
    """An InfluxDB 1.x server of this module's own: the outage check stops and restarts it."""
    server = PrivateInfluxDB(Path(tmp_path_factory.mktemp("influxd")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with request.param(request) as harness:
        yield harness


def stored(sink: Sink, records: Sequence[Record]) -> Counter[tuple[object, ...]]:
    """What the target should hold: each record of a kind the sink stores, once."""
    return Counter(fingerprint(record) for record in records if type(record) in sink.kinds)


def test_the_sink_declares_record_kinds(harness: Harness) -> None:
    sink = harness.open()
    assert sink.kinds and sink.kinds <= RECORD_KINDS
    assert Score in sink.kinds  # every sink stores scores


def test_what_is_added_and_flushed_is_read_back_exactly_once(harness: Harness) -> None:
    sink = harness.open()
    for record in RECORDS:  # kinds the sink does not store are ignored, not refused
        sink.add(record)
    sink.flush()
    assert Counter(harness.read()) == stored(sink, RECORDS)
    sink.flush()  # nothing more buffered: nothing changes
    assert Counter(harness.read()) == stored(sink, RECORDS)


def test_close_flushes_what_was_added(harness: Harness) -> None:
    sink = harness.open()
    for record in RECORDS:
        sink.add(record)
    sink.close()
    assert Counter(harness.read()) == stored(sink, RECORDS)


def test_a_repeated_record_is_stored_once(harness: Harness) -> None:
    sink = harness.open()
    for record in [*RECORDS, *RECORDS]:  # twice in one flush
        sink.add(record)
    sink.flush()
    for record in RECORDS:  # and again in the next (a replay after a restart)
        sink.add(record)
    sink.close()
    assert Counter(harness.read()) == stored(sink, RECORDS)
    again = harness.open()  # another sink on the same target (a second process)
    for record in RECORDS:
        again.add(record)
    again.close()
    assert Counter(harness.read()) == stored(sink, RECORDS)


def test_an_unavailable_target_pushes_back_and_loses_nothing(harness: Harness) -> None:
    sink = harness.open()
    with harness.outage():
        sink.flush()  # nothing buffered: nothing to write, the target is not needed
        for record in RECORDS:
            sink.add(record)
        for _ in range(2):  # as often as the caller tries while it lasts
            with pytest.raises(SinkBackpressureError) as pushed_back:
                sink.flush()
            assert pushed_back.value.retry_after_s > 0
    sink.flush()  # the target is back: everything buffered is written
    assert Counter(harness.read()) == stored(sink, RECORDS)
    sink.close()
    assert Counter(harness.read()) == stored(sink, RECORDS)


def test_discard_forgets_only_what_is_not_written(harness: Harness) -> None:
    sink = harness.open()
    sink.add(RECORDS[0])
    sink.flush()
    for record in RECORDS[1:]:
        sink.add(record)
    sink.discard()  # e.g. the sink agent stops during an outage: the records stay uncommitted in Kafka
    sink.add(RECORDS[3])
    sink.close()
    assert Counter(harness.read()) == stored(sink, [RECORDS[0], RECORDS[3]])


def test_close_is_idempotent(harness: Harness) -> None:
    sink = harness.open()
    sink.add(RECORDS[0])
    sink.close()
    sink.close()
    sink.discard()
    assert Counter(harness.read()) == stored(sink, RECORDS[:1])
