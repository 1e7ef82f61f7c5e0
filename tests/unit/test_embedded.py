"""The embedded runner: bus → processor, bad input counted, worker failures reported."""

from __future__ import annotations

import numpy as np
import pytest

from fusewatch.core.codec import encode
from fusewatch.core.errors import WorkerFailedError
from fusewatch.core.events import VibrationChunk
from fusewatch.core.timeutil import NS_PER_MIN, NS_PER_S
from fusewatch.core.topics import Topics
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner, Reporter, run_partitioned
from streams.settings import StreamSettings

TOPICS = Topics()


def chunk(minute: int, asset: str = "pump-01") -> bytes:
    samples = np.random.default_rng(minute).standard_normal(512).astype(np.float32)
    return encode(VibrationChunk(asset_id=asset, sensor_id="de", ts=minute * NS_PER_MIN + NS_PER_S,
                                 sample_rate_hz=512.0, unit="g", samples=samples))


def test_runner_counts_bad_messages_and_keeps_going() -> None:
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(StreamSettings(), output, run_id="t"))
    for minute in range(20):
        runner.publish(TOPICS.vibration, b"pump-01", chunk(minute), minute * NS_PER_MIN)
        if minute % 5 == 0:
            runner.publish(TOPICS.vibration, b"pump-01", b"\x00 not a message", minute * NS_PER_MIN)
        runner.pump()
    runner.finish()
    scored, _, letters = output.take()
    assert len(scored) == 20
    assert [letter.offset for letter in letters] == [1, 7, 13, 19]  # offsets on the vibration topic
    assert runner.processor.stats.dead_letters == {"invalid": 4}
    assert runner.processor.stats.messages == 24


def test_idle_assets_close_on_the_stream_clock() -> None:
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(StreamSettings(), output, run_id="t"))
    runner.publish(TOPICS.vibration, b"motor-02", chunk(0, "motor-02"), NS_PER_S)
    for minute in range(1, 12):  # pump-01 keeps the clock moving; motor-02 went silent
        runner.publish(TOPICS.vibration, b"pump-01", chunk(minute), minute * NS_PER_MIN)
        runner.pump()
    closed = [s.score.asset_id for s in output.scored]
    assert "motor-02" in closed  # closed by the idle timeout (5 min), not by a watermark
    assert runner.processor.aligner.stats.closed_by_idle == 1


def _failing_job(worker: int, workers: int, reporter: Reporter) -> None:
    if worker == 1:
        raise ValueError("sensor map missing")
    reporter.send(1, CollectingOutput(), final={})


def _quiet_job(worker: int, workers: int, reporter: Reporter) -> None:
    reporter.send(worker + 1, CollectingOutput(), final={"worker": worker, "of": workers})


def test_partitioned_workers_report_and_failures_surface() -> None:
    reports = list(run_partitioned(_quiet_job, 2))
    assert sorted((r.worker, r.progress, r.final["of"]) for r in reports if r.final) == [(0, 1, 2), (1, 2, 2)]
    with pytest.raises(WorkerFailedError, match=r"^worker 1 failed: ValueError: sensor map missing$"):
        list(run_partitioned(_failing_job, 2))
