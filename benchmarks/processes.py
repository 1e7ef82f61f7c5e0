"""The `fusewatch worker` subprocesses of the Kafka benchmarks: how one is started and how it is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fusewatch.config import FusewatchConfig
from fusewatch.core.kafka_settings import KafkaSettings


def bench_kafka(**changes: Any) -> KafkaSettings:
    """The broker the Kafka benchmarks use: the configuration's ``[kafka]`` from the environment
    (``FUSEWATCH_KAFKA__*``: a secured cluster's protocol, user and password file reach the benchmarks and the
    workers they start), with
    ``FUSEWATCH_BENCH_KAFKA`` (bootstrap servers) and ``changes`` over it.

    >>> bench_kafka(topic_prefix="fwbench-1.").topic_prefix
    'fwbench-1.'
    """
    base = FusewatchConfig().kafka.model_dump()
    if "FUSEWATCH_BENCH_KAFKA" in os.environ:
        base["bootstrap_servers"] = os.environ["FUSEWATCH_BENCH_KAFKA"]
    return KafkaSettings(**{**base, **changes})


def worker_command(settings: KafkaSettings, workdir: Path, app_id: str, registry: Path,
                   log_level: str | None = None) -> list[str]:
    """`fusewatch worker` with its defaults, on the benchmark's broker, app id (consumer group) and registry.

    >>> worker_command(KafkaSettings(), Path("w"), "bench", Path("assets.json"), "INFO")[2:6]
    ['fusewatch.cli', '--log-level', 'INFO', 'worker']
    """
    logging = ["--log-level", log_level] if log_level else []
    return [sys.executable, "-m", "fusewatch.cli", *logging, "worker", "--kafka", settings.bootstrap_servers,
            "--workdir", str(workdir), "--app-id", app_id, "--assets-file", str(registry)]


def stop(process: subprocess.Popen[bytes] | None, timeout_s: float = 60.0) -> None:
    """Stop ``process`` gracefully (SIGTERM: a worker checkpoints on the way out), killing it after ``timeout_s``;
    nothing when it is ``None`` or has exited."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
