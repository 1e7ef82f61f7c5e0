"""The integration tier fails, and never skips, when the services it needs are down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def dead_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_integration_tests_fail_loudly_when_kafka_and_influxdb_are_down() -> None:
    env = {**os.environ, "FUSEWATCH_TEST_KAFKA": dead_address(), "FUSEWATCH_TEST_INFLUXDB": f"http://{dead_address()}"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         "tests/integration/test_services.py::test_the_broker_is_kafka_4_in_kraft_mode",
         "tests/integration/test_services.py::test_influxdb_is_the_debian_1x_server"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "2 errors" in result.stdout  # the fixtures fail the tests at set-up
    assert "skipped" not in result.stdout
    assert "Kafka broker at" in result.stdout and "is not available" in result.stdout
    assert "InfluxDB at" in result.stdout and "make services-up" in result.stdout
