"""Broker faults on a real three-broker KRaft cluster (``deploy/local/cluster.sh``), as Kafka's own system tests do
them, with the whole path running: `fusewatch simulate` at plant speed → `fusewatch worker` → `fusewatch sink` →
InfluxDB. Five ``kill -9`` of the busiest leader, a graceful stop and restart of one broker, and a restart of the
whole cluster, each during a run. After each: every input message is on the broker once, every window has one point
in InfluxDB, there are no dead letters, and the scores equal the embedded runner's.

The simulated plant is longer than a scenario needs, so that faults fall while it sends however slowly the machine
sets the run up; once the scenario is over the simulator is stopped (Ctrl-C), and the run is checked against the
messages it says it sent: the first ones of the plant (``fusewatch simulate`` delivers what it sent when stopped).

Each scenario prints a summary line (``pytest -s``) and appends its figures as a JSON line to the file named by
``FUSEWATCH_FAULT_REPORT`` when set. The cluster is started with ``cluster.sh up --fresh`` (a cluster left running
by an aborted run is stopped first) and stopped at the end; when it cannot start the tests fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka.admin import create_topics, topic_names
from connectors.kafka.consumer import read_topics
from connectors.kafka.simulate import default_start_ns
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.core.errors import TopicMismatchError
from fusewatch.core.kafka_settings import KafkaSettings
from fusewatch.core.timeutil import NS_PER_MIN, NS_PER_S, format_time
from tests.integration.cluster import Cluster, ClusterError, busiest_leader, wait_in_sync
from tests.integration.conftest import InfluxV1, unique_prefix
from tests.integration.sinks import SinkProcess, committed
from tests.integration.test_sink_agent import end_offsets
from tests.integration.workers import (
    WorkerProcess,
    assert_same_scores,
    embedded_scores,
    scores_in_topic,
    wait_until,
    window_key,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ASSETS = 3
SPEED = 100.0  # plant seconds per wall second: a plant minute (one window per asset) every 0.6 s
OPEN_WINDOWS = 2  # the newest windows of an asset the embedded runner has and a stopped stream may leave open


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh three-node cluster for this module, stopped at the end whatever happens."""
    try:
        nodes = Cluster()
        nodes.down()  # a cluster left running by an aborted run (`up --fresh` refuses running nodes)
        nodes.up(fresh=True)
    except (ClusterError, OSError) as exc:
        try:
            Cluster().down()
        finally:
            pytest.fail(f"the three-node cluster of deploy/local/cluster.sh did not start: {exc}")
    try:
        yield nodes
    finally:
        nodes.down()


class Pipeline:
    """One run on the cluster: topics of its own, a simulator at ``SPEED``, a worker, a sink, an InfluxDB database."""

    def __init__(self, cluster: Cluster, influx: InfluxV1, tmp_path: Path, hours: float, seed: int) -> None:
        self.cluster = cluster
        self.influx = influx
        self.tmp = tmp_path
        self.kafka: KafkaSettings = cluster.settings(unique_prefix())
        self.topics = self.kafka.topics()
        self.app_id = self.kafka.topic_prefix + "live"
        self.group = self.kafka.topic_prefix + "sink"
        days = hours / 24
        self.plant = PlantSimulator(SimulatorConfig(assets=ASSETS, days=days, seed=seed,
                                                    start_ns=default_start_ns(time.time_ns(), days, SPEED)))
        self.registry = tmp_path / "assets.json"
        self.plant.asset_registry().save(self.registry)
        self.assets = sorted(self.plant.asset_ids)
        self.workers: list[WorkerProcess] = []
        self.sinks: list[SinkProcess] = []
        self.findings: list[str] = []
        self.simulator: subprocess.Popen[bytes] | None = None
        self.simulate_log = tmp_path / "simulate.log"
        self.plant_origin = 0.0  # monotonic time at which the simulator's plant clock started (an upper bound)
        self.started = time.monotonic()

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[-1]

    @property
    def sink(self) -> SinkProcess:
        return self.sinks[-1]

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        wait_until(self.create_topics, 30, "the topics")
        self.start_worker()
        self.start_sink()
        env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix, "PYTHONUNBUFFERED": "1"}
        config = self.plant.config
        with open(self.simulate_log, "wb") as log:
            self.simulator = subprocess.Popen(
                [sys.executable, "-m", "fusewatch.cli", "simulate", "--kafka", self.kafka.bootstrap_servers,
                 "--assets", str(config.assets), "--days", str(config.days), "--seed", str(config.seed), "--start",
                 format_time(config.start_ns), "--speed", f"{SPEED:g}", "--no-progress"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        # the plant clock starts right after the "simulating" line (the producer connects in between)
        wait_until(lambda: "simulating" in self.simulate_log.read_text(errors="replace"), 60, "the simulator")
        self.plant_origin = time.monotonic()
        wait_until(lambda: len(self.newest()) == len(self.assets), 90, "the first points of every asset",
                   self.worker)

    def create_topics(self) -> bool:
        """Create the topics (three replicas); ``False`` when the check after creating does not see them yet: on a
        cluster just started, the broker asked next may lag behind the controller for a moment."""
        try:
            create_topics(self.kafka)
        except TopicMismatchError:
            return False
        return True

    def start_worker(self) -> WorkerProcess:
        workdir = self.tmp / f"host-{len(self.workers) + 1}"  # a new host: its state comes from the state topic
        workdir.mkdir()
        worker = WorkerProcess(self.kafka, workdir, self.app_id, self.registry, f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        wait_until(lambda: (worker.health() or {}).get("partitions") == list(range(self.kafka.partitions)), 120,
                   "the worker's assignment", worker)
        return worker

    def start_sink(self) -> SinkProcess:
        sink = SinkProcess(self.kafka, self.tmp, self.influx.url, self.influx.database, self.group,
                           "--worker-group", self.app_id, "--health-interval", "2",
                           name=f"sink-{len(self.sinks) + 1}")
        self.sinks.append(sink)
        return sink

    def producing(self) -> bool:
        return self.simulator is not None and self.simulator.poll() is None

    def revive(self) -> None:
        """Start a new worker or sink for one that died (a finding: it should have reconnected)."""
        if self.worker.process.poll() is not None:
            self.findings.append(f"worker exited with {self.worker.process.returncode}: "
                                 + last_lines(self.worker.log))
            self.start_worker()
        if self.sink.process.poll() is not None:
            self.findings.append(f"sink exited with {self.sink.process.returncode}: " + last_lines(self.sink.log))
            self.start_sink()

    def alive(self) -> None:
        for process, what in ((self.worker, "worker"), (self.sink, "sink")):
            if process.process.poll() is not None:
                raise AssertionError(f"the {what} exited with {process.process.returncode}\n{process.tail()}")

    def close(self) -> None:
        """Kill whatever still runs (after a failure; a passing run has stopped everything)."""
        for process in [self.simulator, *(w.process for w in self.workers), *(s.process for s in self.sinks)]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)

    # ------------------------------------------------------------------ progress

    def plant_now_ns(self) -> int:
        """The simulator's plant time now, rounded up (what it sends from now on is later than this)."""
        return self.plant.config.start_ns + round((time.monotonic() - self.plant_origin + 0.2) * SPEED * NS_PER_S)

    def newest(self) -> dict[str, int]:
        """The end of the newest window per asset in InfluxDB."""
        result = self.influx.query('SELECT last("fused") FROM fusewatch_score GROUP BY "asset_id"')[0]
        return {series["tags"]["asset_id"]: series["values"][0][0] for series in result.get("series", [])}

    def resumed(self, fault_ns: int, began: float, timeout: float = 120.0, revive: bool = False) -> float:
        """Wait until data the simulator sent after plant time ``fault_ns`` (the fault's start, at monotonic time
        ``began``) went all the way through: every asset has a point in InfluxDB for a window that starts after it.
        Seconds since ``began`` (the pipeline's end-to-end latency included: see :func:`baseline`)."""
        target = fault_ns + NS_PER_MIN

        def through() -> bool:
            if not self.producing():  # the target is never reached: say why at once
                assert self.simulator is not None
                raise AssertionError(f"the simulator exited with {self.simulator.returncode} during the scenario:\n"
                                     + self.simulate_log.read_text(errors="replace")[-2000:])
            if revive:
                self.revive()
            else:
                self.alive()
            newest = self.newest()
            return all(newest.get(asset, 0) >= target for asset in self.assets)

        try:
            wait_until(through, timeout, "the pipeline to resume")
        except AssertionError as exc:  # say what lagged: the newest window per asset, the worker's and sink's logs
            newest = {asset: (end - target) / NS_PER_S for asset, end in self.newest().items()}
            raise AssertionError(f"{exc}\nnewest window minus the target, s of plant time: {newest}\n"
                                 f"worker: {self.worker.tail()}\nsink: {self.sink.tail()}") from None
        return round(time.monotonic() - began, 2)

    # ------------------------------------------------------------------ the end

    def stop_simulator(self) -> int:
        """Stop the simulator as an operator would (Ctrl-C) and return how many messages it sent: the plant's first
        ones, each acknowledged before it exited."""
        assert self.simulator is not None
        if self.simulator.poll() is None:
            self.simulator.send_signal(signal.SIGINT)
        code = self.simulator.wait(timeout=120)
        log = self.simulate_log.read_text(errors="replace")
        assert code == 130, f"the simulator exited with {code}, not as stopped (130):\n{log[-4000:]}"
        stopped = [line for line in log.splitlines() if "stopped: " in line]
        assert stopped, f"the simulator did not say what it sent:\n{log[-4000:]}"
        return int(stopped[-1].split("stopped: ")[1].split()[0])

    def finish(self) -> dict[str, Any]:
        """Stop the simulator, let every window it sent be scored and written, stop the worker and the sink, and
        gather the figures the assertions of :func:`check` use."""
        sent = self.stop_simulator()
        sent_keys: dict[str, set[tuple[bytes | None, int, int]]] = {topic: set() for topic in self.topics.inputs}
        for message, _ in zip(self.plant.messages(), range(sent), strict=False):
            sent_keys[self.kafka.topic_prefix + message.kind].add((message.key, message.timestamp_ms,
                                                                   hash(message.value)))
        windows = len(sent_keys[self.topics.vibration]) - 2 * OPEN_WINDOWS * len(self.assets)
        wait_until(lambda: len({window_key(s) for s in scores_in_topic(self.kafka)}) >= windows, 180,
                   f"{windows} windows scored", self.worker)
        wait_until(self.worker.drained, 60, "every message processed", self.worker)
        wait_until(lambda: committed(self.kafka, self.group, self.topics.scores) == end_offsets(self.kafka), 120,
                   "the sink to catch up")
        counters = (self.worker.health() or {}).get("counters", {})
        assert self.worker.stop() == 0, self.worker.tail()
        stats = self.sink.stop()
        restored = self.worker.log.read_text(errors="replace").count("restored checkpoint")

        inputs: dict[str, Counter[tuple[bytes | None, int, int]]] = {topic: Counter() for topic in self.topics.inputs}
        for record in read_topics(self.kafka, list(self.topics.inputs)):
            inputs[record.topic][(record.key, record.timestamp_ms, hash(record.value))] += 1
        letters = [json.loads(record.value) for record in read_topics(self.kafka, [self.topics.dead_letter])]
        scores = scores_in_topic(self.kafka)
        result = self.influx.query('SELECT "fused", "asset_id" FROM fusewatch_score')[0]
        points = Counter((asset, end) for end, _, asset in result.get("series", [{"values": []}])[0]["values"])
        expected = embedded_scores(self.plant, first=sent)
        due = set()
        for asset in self.assets:
            ends = sorted(end for a, end in expected if a == asset)
            due |= {(asset, end) for end in ends[: len(ends) - OPEN_WINDOWS]}
        distinct = {window_key(score) for score in scores}
        return {
            "sent": sent,
            "messages": {t.removeprefix(self.kafka.topic_prefix): sum(c.values()) for t, c in inputs.items()},
            "lost": {t.removeprefix(self.kafka.topic_prefix): len(sent_keys[t] - set(c)) for t, c in inputs.items()},
            "unsent_on_broker": sum(len(set(c) - sent_keys[t]) for t, c in inputs.items()),
            "repeated_inputs": sum(sum(c.values()) - len(c) for c in inputs.values()),
            "dead_letters": len(letters),
            "dead_letter_reasons": sorted({letter["error"][:200] for letter in letters}),
            "windows_expected": len(due),
            "windows_present": len(due & set(points)),
            "windows_scored": len(distinct),
            "score_messages": len(scores),
            "duplicates": len(scores) - len(distinct),
            "points": sum(points.values()),
            "windows_with_several_points": sum(1 for n in points.values() if n > 1),
            "points_not_in_topic": len(set(points) - distinct),
            "worker_counters": {k: v for k, v in counters.items() if k in ("resumed_stalled", "dropped_after_revoke",
                                                                           "checkpoints", "processed")},
            "restored_checkpoints": restored,
            "sink_outages": stats.get("outages", 0),
            "_scores": scores,
            "_expected": expected,
        }

    def report(self, scenario: str, figures: dict[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in figures.items() if not k.startswith("_")}
        line = {"scenario": scenario, **public, "worker_starts": len(self.workers), "sink_starts": len(self.sinks),
                "findings": self.findings, "duration_s": round(time.monotonic() - self.started, 1)}
        path = os.environ.get("FUSEWATCH_FAULT_REPORT")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
        return line


def last_lines(log: Path, count: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-count:])


def check(figures: dict[str, Any], summary: str) -> None:
    """The assertions every scenario makes, after its summary is printed."""
    print(f"\n{summary}")
    assert figures["dead_letters"] == 0, f"{figures['dead_letters']} dead letters: {figures['dead_letter_reasons']}"
    assert not any(figures["lost"].values()), f"input messages lost: {figures['lost']}"
    assert figures["unsent_on_broker"] == 0, "messages on the broker the simulator did not say it sent"
    assert figures["repeated_inputs"] == 0, f"{figures['repeated_inputs']} input messages on the broker twice"
    assert figures["windows_present"] == figures["windows_expected"], "windows without a point in InfluxDB"
    assert figures["windows_with_several_points"] == 0
    assert figures["points_not_in_topic"] == 0
    assert_same_scores(figures["_expected"], figures["_scores"], open_windows=OPEN_WINDOWS)


def describe(figures: dict[str, Any]) -> str:
    return (f"{figures['sent']} messages sent; windows expected {figures['windows_expected']}, present"
            f" {figures['windows_present']}; duplicates in"
            f" scores {figures['duplicates']}; lost inputs {sum(figures['lost'].values())}; dead letters"
            f" {figures['dead_letters']}; worker starts {figures['worker_starts']}, sink starts"
            f" {figures['sink_starts']}; {figures['duration_s']:.0f} s")


@contextmanager
def pipeline(cluster: Cluster, influx: InfluxV1, tmp_path: Path, hours: float, seed: int) -> Iterator[Pipeline]:
    run = Pipeline(cluster, influx, tmp_path, hours, seed)
    try:
        run.start()
        yield run
    finally:
        run.close()


def baseline(run: Pipeline) -> float:
    """The end-to-end latency without a fault, measured as :meth:`Pipeline.resumed` measures a fault's."""
    return run.resumed(run.plant_now_ns(), time.monotonic(), timeout=60)


def test_five_kill_9_of_the_busiest_leader_during_a_run(cluster: Cluster, influxdb: InfluxV1, tmp_path: Path) -> None:
    with pipeline(cluster, influxdb, tmp_path, hours=10.0, seed=21) as run:
        before = baseline(run)
        kills: list[dict[str, Any]] = []
        for _ in range(5):
            node, led = busiest_leader(run.kafka, run.topics.vibration, run.assets)
            producing = run.producing()
            fault_ns, began = run.plant_now_ns(), time.monotonic()
            cluster.kill(node)
            resume_s = run.resumed(fault_ns, began)
            start_s = cluster.start(node)
            isr_s = wait_in_sync(run.kafka, topic_names(run.kafka))
            kills.append({"node": node, "led_partitions_with_data": led, "producing": producing,
                          "resume_s": resume_s, "start_s": round(start_s, 1), "isr_s": round(isr_s, 1)})
        figures = run.finish()
        line = run.report("leader-kill-9", {"kills": kills, "kills_survived": len(kills), "baseline_s": before,
                                            "resume_s": [k["resume_s"] for k in kills], **figures})
    check(figures, f"leader kill -9: {len(kills)} kills survived (nodes {[k['node'] for k in kills]}, producing"
                   f" {sum(k['producing'] for k in kills)}/{len(kills)}); resume after each kill"
                   f" {line['resume_s']} s (baseline {before} s); restart {[k['start_s'] for k in kills]} s, back"
                   f" in sync {[k['isr_s'] for k in kills]} s; " + describe(line))
    assert all(k["producing"] for k in kills), "the simulator had finished before the last kill: too short a plant"


def test_graceful_stop_and_restart_of_one_broker_during_a_run(
    cluster: Cluster, influxdb: InfluxV1, tmp_path: Path
) -> None:
    with pipeline(cluster, influxdb, tmp_path, hours=5.0, seed=22) as run:
        before = baseline(run)
        node, _ = busiest_leader(run.kafka, run.topics.vibration, run.assets)
        fault_ns, began = run.plant_now_ns(), time.monotonic()
        stop_s = cluster.stop(node)
        resume_s = run.resumed(fault_ns, began)
        producing = run.producing()
        start_s = cluster.start(node)
        isr_s = wait_in_sync(run.kafka, topic_names(run.kafka))
        figures = run.finish()
        line = run.report("broker-stop-start", {"node": node, "baseline_s": before, "stop_s": round(stop_s, 1),
                                                "resume_s": [resume_s], "start_s": round(start_s, 1),
                                                "isr_s": round(isr_s, 1), "producing": producing, **figures})
    check(figures, f"graceful stop/start of node {node}: stop {stop_s:.1f} s, resume {resume_s} s after the stop"
                   f" (baseline {before} s), restart {start_s:.1f} s, back in sync {isr_s:.1f} s; " + describe(line))
    assert producing, "the simulator had finished before the broker came back: too short a plant"


def test_restart_of_the_whole_cluster_during_a_run(cluster: Cluster, influxdb: InfluxV1, tmp_path: Path) -> None:
    with pipeline(cluster, influxdb, tmp_path, hours=6.0, seed=23) as run:
        before = baseline(run)
        fault_ns, began = run.plant_now_ns(), time.monotonic()
        down_s = cluster.down()
        up_s = cluster.up()
        outage_s = time.monotonic() - began
        producing = run.producing()
        # a worker or sink that gave up while the cluster was gone is a finding; a new one must resume
        resume_s = run.resumed(fault_ns, began, timeout=180, revive=True)
        after_up_s = round(resume_s - outage_s, 2)
        isr_s = wait_in_sync(run.kafka, topic_names(run.kafka))
        figures = run.finish()
        line = run.report("cluster-restart", {"baseline_s": before, "down_s": round(down_s, 1),
                                              "up_s": round(up_s, 1), "outage_s": round(outage_s, 1),
                                              "resume_s": [resume_s], "resume_after_up_s": after_up_s,
                                              "isr_s": round(isr_s, 1), "producing": producing, **figures})
    restarted = len(run.workers) > 1
    check(figures, f"whole-cluster restart: down {down_s:.1f} s, up {up_s:.1f} s (outage {outage_s:.1f} s), resume"
                   f" {resume_s} s after the fault, {after_up_s} s after the cluster was up (baseline {before} s)"
                   + (f"; FINDINGS {run.findings}" if run.findings else "") + "; " + describe(line))
    if restarted:  # the last worker took over from the state topic, not from scratch
        assert figures["restored_checkpoints"] >= 1, "the restarted worker restored no checkpoint"
    assert producing, "the simulator had finished before the cluster came back: too short a plant"
