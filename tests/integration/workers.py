"""Run `fusewatch worker` processes against the test's topics, and compute what they should produce."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.kafka.consumer import read_topics
from connectors.sources.simulator import PlantSimulator
from fusewatch.core.codec import encode
from fusewatch.core.events import Score
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import parse_time
from fusewatch.core.topics import Topics
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput, EmbeddedRunner
from streams.settings import StreamSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WorkerProcess:
    """One `fusewatch worker` subprocess with its log file and health endpoint."""

    def __init__(self, kafka: KafkaSettings, workdir: Path, app_id: str, assets_file: Path, name: str,
                 run_id: str = "live", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix, **(env or {})}
        command = [sys.executable, "-m", "fusewatch.cli", "--log-level", "INFO", "worker", "--kafka",
                   kafka.bootstrap_servers, "--workdir", str(workdir), "--app-id", app_id, "--assets-file",
                   str(assets_file), "--web-port", str(self.port), "--checkpoint-every", "500", "--run-id", run_id]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/fusewatch/health/", timeout=2) as response:
                health: dict[str, Any] = json.loads(response.read())
                return health
        except OSError:
            return None

    def drained(self) -> bool:
        """Nothing left to read, held back or unprocessed (so the windows it closed no longer depend on timing)."""
        health = self.health()
        return bool(health and sum(health["lag"].values()) == 0 and not any(health["held"].values()))

    def kill(self) -> None:
        """``kill -9``: no checkpoint, no commit, no goodbye to the group."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as an operator or an orchestrator stops a worker."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def tail(self) -> str:
        return f"health: {self.health()}\n" + self.log.read_text(errors="replace")[-4000:]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess | None = None) -> float:
    """Poll ``condition`` every 0.5 s; seconds it took. Fails with ``what`` (and the worker's log) on time-out."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            log = worker.tail() if worker else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log}")
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(f"the worker exited with {worker.process.returncode}\n{worker.tail()}")
        time.sleep(0.5)
    return time.monotonic() - started


def scores_in_topic(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in read_topics(kafka, [kafka.topics().scores])]


def window_key(score: dict[str, Any]) -> tuple[str, int]:
    return score["asset_id"], parse_time(score["window_end"])


def embedded_scores(plant: PlantSimulator, skip: Callable[[int], bool] | None = None,
                    settings: StreamSettings | None = None, first: int | None = None) -> dict[tuple[str, int], Score]:
    """The embedded runner's scores for the plant's events (leaving out the event indices ``skip`` names; only the
    ``first`` events when given, as a simulator stopped after sending them left them)."""
    output = CollectingOutput()
    runner = EmbeddedRunner(StreamProcessor(settings or StreamSettings(), output, assets=plant.asset_registry()))
    topics = Topics()
    index = 0
    for step in plant.steps():
        for event in step:
            if first is not None and index >= first:
                break
            if skip is None or not skip(index):
                runner.publish(topics.for_event(event), event.asset_id.encode(), encode(event), event.ts)
            index += 1
        runner.pump()
        if first is not None and index >= first:
            break
    scores, _, _ = output.take()
    return {(s.score.asset_id, s.score.window_end): s.score for s in scores}


def assert_same_scores(
    expected: dict[tuple[str, int], Score], got: list[dict[str, Any]], open_windows: int = 2
) -> None:
    """Every expected window but the newest ``open_windows`` per asset is in ``got`` with the same values."""
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for score in got:
        key = window_key(score)
        if key in by_key:
            assert by_key[key] == score, f"{key}: a repeated window differs from the first"
        by_key[key] = score
    unexpected = sorted(set(by_key) - set(expected))
    assert not unexpected, f"windows the embedded runner does not have: {unexpected[:5]}"
    for asset in {asset for asset, _ in expected}:
        ends = sorted(end for a, end in expected if a == asset)
        missing = [end for end in ends[: len(ends) - open_windows] if (asset, end) not in by_key]
        assert not missing, f"{asset}: {len(missing)} windows never scored, first {missing[:3]}"
    for key, score in by_key.items():
        reference = expected[key]
        assert abs(score["fused"] - reference.fused) <= 1e-9, key
        for modality, value in score["calibrated"].items():
            assert abs(value - reference.calibrated[modality]) <= 1e-9, (key, modality)
