"""The fan-out shared by the demo and the sink agent: every sink, back-pressure waited out, refusals found record
by record, webhooks after the write. Real SQLite files, the InfluxDB v2 stand-in, a real webhook outbox."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sinks.base import Record
from connectors.sinks.fanout import Backoff, FanOut
from connectors.sinks.influx.points import ALERTS, LOGS, SCORES
from connectors.sinks.influx.writers import InfluxV2Sink
from connectors.sinks.sqlite import SqliteSink
from connectors.webhooks.delivery import Endpoint, WebhookSender
from connectors.webhooks.signing import WebhookSecret
from fusewatch.core.errors import SinkRejectedError, SinkUnavailableError
from fusewatch.core.events import Alert, MaintenanceLog, Score, make_event
from fusewatch.core.timeutil import NS_PER_MIN, parse_time
from tests.influx_v2 import InfluxV2Double, influx_v2_double

T0 = parse_time("2026-11-30T00:00:00Z")


def score(minute: int, fused: float = 0.25) -> Score:
    return make_event(
        Score, asset_id="pump-1", window_start=T0 + (minute - 1) * NS_PER_MIN, window_end=T0 + minute * NS_PER_MIN,
        fused=fused, calibrated={"vibration": 0.5}, raw={"vibration": 1.0}, contributions={"vibration": fused},
        present={"vibration": True, "camera": False, "logs": False}, leading="vibration", top_features=[],
        warmup=False, model_version="v1", run_id="run-1", features={"kurtosis": float(minute)},
    )  # fmt: skip


def alert(transition: str, minute: int) -> Alert:
    return make_event(
        Alert, alert_id="pump-1:run-1:1", asset_id="pump-1", ts=T0 + minute * NS_PER_MIN, transition=transition,
        severity="warning", fused=0.9, contributions={"vibration": 0.9}, leading="vibration", top_features=[],
        opened_at=T0 + 2 * NS_PER_MIN, run_id="run-1",
    )  # fmt: skip


RECORDS: list[Record] = [
    score(1), score(2), alert("opened", 2),
    make_event(MaintenanceLog, asset_id="pump-1", ts=T0 + 90 * 10**9, text="grease the bearing"),
]  # fmt: skip


@pytest.fixture
def influx() -> Iterator[InfluxV2Double]:
    with influx_v2_double() as double:
        yield double
    assert not double.violations


@pytest.fixture
def sender(tmp_path: Path) -> Iterator[WebhookSender]:
    endpoint = Endpoint("https://alerts.example.com/hook", WebhookSecret.generate())
    webhooks = WebhookSender([endpoint], tmp_path / "outbox.sqlite")  # not started: the outbox only fills
    yield webhooks
    webhooks.stop()


def v2_sink(double: InfluxV2Double) -> InfluxV2Sink:
    return InfluxV2Sink(double.url, org=double.org, bucket=double.bucket, token=double.token, timeout_s=2.0)


def test_every_sink_gets_the_batch_and_alerts_reach_the_outbox(
    tmp_path: Path, influx: InfluxV2Double, sender: WebhookSender
) -> None:
    with SqliteSink(tmp_path / "scores.sqlite") as sqlite:
        points = v2_sink(influx)
        FanOut([sqlite, points], sender).deliver(RECORDS)
        assert sqlite.count("scores") == 2 and [a.transition for a in sqlite.read_alerts()] == ["opened"]
        assert [len(influx.stored(m)) for m in (SCORES, "fusewatch_features", ALERTS, LOGS)] == [2, 2, 1, 1]
        assert points.points_written == 6 and points.pending == 0
        assert sender.states() == {"pending": 1}
        points.close()


def test_back_pressure_is_waited_out_then_everything_is_written(influx: InfluxV2Double) -> None:
    influx.answers = [(503, {"Retry-After": "3"}), (429, {}), (503, {"Retry-After": "60"}), (503, {})]
    waits: list[float] = []
    resumed: list[bool] = []
    sink = v2_sink(influx)
    fanout = FanOut([sink], backoff=Backoff(max_delay_s=4.0, max_wait_s=10.0), pause=waits.append,
                    resume=lambda: resumed.append(True))
    fanout.deliver(RECORDS)
    assert waits == [3.0, 2.0, 10.0, 4.0]  # max(delay, Retry-After) capped at max_wait; the delay doubles to 4 s
    assert resumed == [True] and fanout.stats.outages == 1 and fanout.stats.outage_s >= 0
    assert len(influx.stored(SCORES)) == 2 and sink.pending == 0
    sink.close()


def test_jitter_shortens_waits_by_at_most_its_share(influx: InfluxV2Double) -> None:
    influx.answers = [(503, {})] * 5
    waits: list[float] = []
    sink = v2_sink(influx)
    FanOut([sink], backoff=Backoff(max_delay_s=10.0, jitter=0.2), pause=waits.append,
           rng=random.Random(1)).deliver(RECORDS)
    assert all(0.8 * nominal <= wait <= nominal for wait, nominal in zip(waits, [1, 2, 4, 8, 10], strict=True))
    sink.close()


def test_giving_up_raises_and_leaves_nothing_for_close_to_retry(influx: InfluxV2Double) -> None:
    influx.unavailable = True
    waits: list[float] = []
    sink = v2_sink(influx)
    fanout = FanOut([sink], backoff=Backoff(max_delay_s=30.0, give_up_after_s=0.0), pause=waits.append)
    with pytest.raises(SinkUnavailableError, match="503"):
        fanout.deliver(RECORDS)
    assert waits == [] and sink.pending == 0
    sink.close()  # nothing left: no request, no error


def test_a_refused_batch_is_written_record_by_record_and_the_refused_ones_are_reported(
    influx: InfluxV2Double, sender: WebhookSender
) -> None:
    influx.answers = [(400, {}), (204, {}), (204, {}), (400, {}), (204, {})]  # the batch, then record by record
    refused: list[int] = []
    sink = v2_sink(influx)
    FanOut([sink], sender).deliver(RECORDS, lambda index, error: refused.append(index))
    assert refused == [2]  # the alert
    assert len(influx.stored(SCORES)) == 2 and influx.stored(ALERTS) == [] and len(influx.stored(LOGS)) == 1
    assert sender.states() == {"pending": 1}  # refused by InfluxDB, still an alert transition to deliver
    influx.answers = [(400, {})]
    with pytest.raises(SinkRejectedError):  # without a handler the refusal is the caller's
        FanOut([sink]).deliver(RECORDS)
    sink.close()
