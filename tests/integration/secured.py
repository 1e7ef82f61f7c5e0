"""The secured services of the security tests: the local broker's SASL_SSL and mutual-TLS listeners
(``deploy/local/services.sh``: certificates and SCRAM users in the cache), and an InfluxDB 1.x server of the
test's own with ``auth-enabled = true`` (Debian's ``influxd``, the same binary as the local service)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.workers import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FUSEWATCH_CACHE", Path.home() / ".cache" / "fusewatch"))
KAFKA_HOME = CACHE / "kafka"
SASL_SSL = f"127.0.0.1:{os.environ.get('FUSEWATCH_KAFKA_SASL_SSL_PORT', '9094')}"
MUTUAL_TLS = f"127.0.0.1:{os.environ.get('FUSEWATCH_KAFKA_SSL_PORT', '9095')}"


def secret_file(user: str) -> Path:
    """The file holding the SCRAM password of ``user`` (admin, fusewatch, outsider), written by services.sh."""
    return KAFKA_HOME / "secrets" / f"{user}.password"


def tls_file(name: str) -> Path:
    """A PEM file of the local broker's TLS material (ca.pem, fusewatch-client.pem/.key, outsider-client.*)."""
    return KAFKA_HOME / "tls" / name


@dataclass
class AuthInflux:
    """An InfluxDB 1.x server with authentication on, an admin, and a user who may only write one database."""

    url: str
    database: str
    admin_password: str
    user: str
    password_file: Path
    process: subprocess.Popen[bytes]
    directory: Path

    def request(self, path: str, params: dict[str, str], user: str | None = None,
                password: str | None = None, data: bytes | None = None) -> tuple[int, str]:
        """One request with HTTP basic credentials (``None``: none); the status and the body."""
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=data,
                                         method="POST")
        if user is not None:
            pair = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {pair}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def admin_query(self, statement: str, database: str = "") -> list[dict[str, Any]]:
        params = {"q": statement, "epoch": "ns"}
        if database:
            params["db"] = database
        status, body = self.request("/query", params, "admin", self.admin_password)
        if status != 200:
            raise RuntimeError(f"InfluxDB {status}: {body}")
        results: list[dict[str, Any]] = json.loads(body)["results"]
        return results

    def count(self, measurement: str) -> int:
        series = self.admin_query(f'SELECT count(*) FROM "{measurement}"', self.database)[0].get("series", [])
        if not series:
            return 0
        return max(int(value) for value in series[0]["values"][0][1:] if value is not None)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_auth_influx() -> AuthInflux:
    """Start ``influxd`` with auth enabled on free loopback ports; create the admin and a write-only user."""
    influxd = shutil.which("influxd")
    if influxd is None:
        raise RuntimeError("influxd is not installed: `make services-up` installs Debian's influxdb package")
    directory = Path(tempfile.mkdtemp(prefix="fusewatch-influx-auth-"))
    port, rpc = free_port(), free_port()
    config = (ROOT / "deploy" / "local" / "influxdb.conf.in").read_text()
    for name, value in (("@INFLUX_PORT@", str(port)), ("@INFLUX_RPC_PORT@", str(rpc)),
                        ("@INFLUX_DIR@", str(directory))):
        config = config.replace(name, value)
    config = config.replace("auth-enabled = false", "auth-enabled = true")
    (directory / "influxdb.conf").write_text(config)
    log = open(directory / "influxd.log", "wb")  # noqa: SIM115 - the server's output, closed with the process
    process = subprocess.Popen([influxd, "-config", str(directory / "influxdb.conf")], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
                if response.status == 204:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"influxd with auth did not start: {(directory / 'influxd.log').read_text()[-2000:]}")
        time.sleep(0.2)
    admin_password = base64.b32encode(os.urandom(10)).decode()
    password = base64.b32encode(os.urandom(10)).decode()
    password_file = directory / "fusewatch.password"
    password_file.write_text(password + "\n")
    server = AuthInflux(url, "fusewatch_secured", admin_password, "fusewatch", password_file, process, directory)
    # the first user may be created without credentials, and must be an admin
    status, body = server.request("/query", {"q": f"CREATE USER admin WITH PASSWORD '{admin_password}'"
                                             " WITH ALL PRIVILEGES"})
    if status != 200 or "error" in body:
        server.stop()
        raise RuntimeError(f"creating the InfluxDB admin failed: {status} {body}")
    for statement in (f'CREATE DATABASE "{server.database}"', f"CREATE USER fusewatch WITH PASSWORD '{password}'",
                      f'GRANT WRITE ON "{server.database}" TO fusewatch'):
        server.admin_query(statement)
    return server
