"""Run `fusewatch sink` processes and private InfluxDB servers for the sink agent's tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError

from connectors.kafka.admin import admin_client
from fusewatch.core.kafka_settings import KafkaSettings
from tests.integration.workers import free_port

REPO = Path(__file__).resolve().parents[2]


class SinkProcess:
    """One `fusewatch sink` subprocess writing to ``influx_url``/``database``; its log and final counters."""

    def __init__(self, kafka: KafkaSettings, workdir: Path, influx_url: str, database: str, group: str,
                 *extra: str, name: str = "sink", env: dict[str, str] | None = None) -> None:
        self.log = workdir / f"{name}.log"
        self.stats_file = workdir / f"{name}-stats.json"
        env = {**os.environ, "FUSEWATCH_KAFKA__TOPIC_PREFIX": kafka.topic_prefix, **(env or {})}
        command = [sys.executable, "-m", "fusewatch.cli", "--log-level", "INFO", "sink", "--kafka",
                   kafka.bootstrap_servers, "--influx", influx_url, "--influx-db", database, "--group", group,
                   "--outbox", str(workdir / f"{name}-outbox.sqlite"), "--stats-json", str(self.stats_file), *extra]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float) -> dict[str, Any]:
        """Wait for a sink started with ``--stop-when-idle`` to exit by itself; its counters."""
        code = self.process.wait(timeout=timeout)
        assert code == 0, self.tail()
        stats: dict[str, Any] = json.loads(self.stats_file.read_text())
        return stats

    def stop(self) -> dict[str, Any]:
        """SIGTERM; its counters."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(60)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def committed(kafka: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (partitions with none are left out).

    While the group's coordinator moves (a broker was killed) the answer is an empty dict, so a caller polling with
    ``wait_until`` asks again instead of failing on a retriable error.
    """
    partitions = [TopicPartition(topic, number) for number in range(kafka.partitions)]
    try:
        with admin_client(kafka) as admin:
            offsets = admin.list_group_offsets({group: partitions}).get(group, {})
    except (NotCoordinatorError, CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
        return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


class PrivateInfluxDB:
    """An InfluxDB server of the test's own (Debian's ``influxd``, our config), so it can be stopped mid-run."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        template = (REPO / "deploy" / "local" / "influxdb.conf.in").read_text()
        config = (template.replace("@INFLUX_RPC_PORT@", str(free_port())).replace("@INFLUX_PORT@", str(self.port))
                  .replace("@INFLUX_DIR@", str(home)))
        home.mkdir(parents=True, exist_ok=True)
        self.config = home / "influxdb.conf"
        self.config.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("influxd")
        assert binary, "influxd is not installed; start the services with `make services-up`"
        with open(self.home / "influxd.log", "ab") as log:
            self.process = subprocess.Popen([binary, "-config", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            assert self.process.poll() is None, (self.home / "influxd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, f"InfluxDB on port {self.port} did not start in {timeout:g} s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                return bool(response.status == 204)
        except OSError:
            return False
