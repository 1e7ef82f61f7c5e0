"""fusewatch on a secured cluster: TLS, SASL/SCRAM and ACLs on the local broker's secured listeners
(deploy/local/services.sh), and InfluxDB 1.x with authentication; each refusal is one clear, prompt error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.kafka.admin import topic_names
from connectors.kafka.consumer import read_topics
from fusewatch.core.kafka_settings import KafkaSettings
from tests.integration.secured import (
    MUTUAL_TLS,
    SASL_SSL,
    AuthInflux,
    secret_file,
    start_auth_influx,
    tls_file,
)
from tests.integration.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

TIMEOUT_S = 6.0  # [kafka] timeout_s of these tests: every refusal must come sooner


def secured_env(prefix: str, user: str = "fusewatch", **changes: str) -> dict[str, str]:
    """The environment of a fusewatch process on the SASL_SSL listener as ``user`` (password from its file)."""
    env = {
        "FUSEWATCH_KAFKA__BOOTSTRAP_SERVERS": SASL_SSL,
        "FUSEWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "FUSEWATCH_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "FUSEWATCH_KAFKA__SASL_USERNAME": user,
        "FUSEWATCH_KAFKA__SASL_PASSWORD_FILE": str(secret_file(user)),
        "FUSEWATCH_KAFKA__SSL_CAFILE": str(tls_file("ca.pem")),
        "FUSEWATCH_KAFKA__TOPIC_PREFIX": prefix,
        "FUSEWATCH_KAFKA__TIMEOUT_S": str(TIMEOUT_S),
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v != ""}


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``fusewatch ARGS`` with ``env`` over a clean FUSEWATCH_* environment; the result and seconds taken."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUSEWATCH_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fusewatch.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**base, **env}, check=False)
    return done, time.monotonic() - started


def settings_of(env: dict[str, str]) -> KafkaSettings:
    values = {key.removeprefix("FUSEWATCH_KAFKA__").lower(): value for key, value in env.items()
              if key.startswith("FUSEWATCH_KAFKA__")}
    return KafkaSettings(**values)


@pytest.fixture(scope="module")
def secured(kafka_broker: KafkaSettings) -> Iterator[str]:
    """A topic prefix of this module's own on the secured listeners, its topics created by User:fusewatch after
    an administrator granted fusewatch's ACLs (``fusewatch topics acls --apply``); deleted afterwards."""
    for path in (secret_file("admin"), secret_file("fusewatch"), tls_file("ca.pem")):
        if not path.exists():
            pytest.fail(f"{path} is missing: the local broker has no secured listener; run `make services-up`")
    prefix = f"fusewatch.sec-{uuid.uuid4().hex[:10]}."
    granted, _ = cli(secured_env(prefix, "admin"), "topics", "acls", "--principal", "User:fusewatch", "--apply")
    assert granted.returncode == 0, granted.stderr
    assert "created 8 ACLs" in granted.stdout  # 5 on the topics, 2 on the groups, 1 on the cluster
    created, _ = cli(secured_env(prefix), "topics", "create")
    assert created.returncode == 0, created.stderr
    try:
        yield prefix
    finally:
        from connectors.kafka.admin import delete_topics

        delete_topics(kafka_broker.model_copy(update={"topic_prefix": prefix}),
                      topic_names(kafka_broker.model_copy(update={"topic_prefix": prefix})))


@pytest.fixture(scope="module")
def auth_influx() -> Iterator[AuthInflux]:
    try:
        server = start_auth_influx()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def end_offsets(prefix: str) -> int:
    """Messages in the input topics now (read over the development listener, as an administrator)."""
    settings = KafkaSettings(topic_prefix=prefix)
    return sum(1 for _ in read_topics(settings, list(settings.topics().inputs)))


def test_the_whole_path_runs_secured(secured: str, auth_influx: AuthInflux, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate → worker → sink → InfluxDB, every Kafka client over SASL_SSL as User:fusewatch, the sink into an
    InfluxDB with authentication as a user who may only write; no secret in any log."""
    env = secured_env(secured)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the worker subprocess inherits the environment
    registry = tmp_path / "assets.json"
    settings = settings_of(env)
    worker = WorkerProcess(settings, tmp_path, f"{secured}app", registry, "worker")
    try:
        simulated, _ = cli(env, "simulate", "--assets", "2", "--days", "0.1", "--speed", "max", "--seed", "3",
                           "--assets-file", str(registry), "--no-progress")
        assert simulated.returncode == 0, simulated.stderr
        produced = end_offsets(secured)
        assert produced > 0
        wait_until(lambda: len(list(read_topics(settings, [settings.topics().scores]))) >= 250, 240,
                   "the secured worker's scores", worker)
    finally:
        assert worker.stop() == 0, worker.tail()
    scores = [json.loads(r.value) for r in read_topics(settings, [settings.topics().scores])]
    windows = {(s["asset_id"], s["window_end"]) for s in scores}
    influx_env = {**env, "FUSEWATCH_INFLUX__URL": auth_influx.url, "FUSEWATCH_INFLUX__DATABASE": auth_influx.database,
                  "FUSEWATCH_INFLUX__USERNAME": auth_influx.user,
                  "FUSEWATCH_INFLUX__PASSWORD_FILE": str(auth_influx.password_file)}
    sink, _ = cli(influx_env, "--log-level", "INFO", "sink", "--group", f"{secured}sink",
                  "--worker-group", f"{secured}app", "--stop-when-idle", "4")
    assert sink.returncode == 0, sink.stderr[-3000:]
    assert auth_influx.count("fusewatch_score") == len(windows)
    passwords = [secret_file("fusewatch").read_text(), auth_influx.password_file.read_text().strip()]
    for text in (worker.log.read_text(), sink.stderr, sink.stdout, simulated.stderr):
        for password in passwords:
            assert password not in text


def test_mutual_tls_authenticates_by_certificate(secured: str) -> None:
    env = {"FUSEWATCH_KAFKA__BOOTSTRAP_SERVERS": MUTUAL_TLS, "FUSEWATCH_KAFKA__SECURITY_PROTOCOL": "SSL",
           "FUSEWATCH_KAFKA__SSL_CAFILE": str(tls_file("ca.pem")),
           "FUSEWATCH_KAFKA__SSL_CERTFILE": str(tls_file("fusewatch-client.pem")),
           "FUSEWATCH_KAFKA__SSL_KEYFILE": str(tls_file("fusewatch-client.key")),
           "FUSEWATCH_KAFKA__TOPIC_PREFIX": secured, "FUSEWATCH_KAFKA__TIMEOUT_S": str(TIMEOUT_S)}
    described, _ = cli(env, "topics", "describe")
    assert described.returncode == 0, described.stderr  # CN=fusewatch is User:fusewatch, which has the ACLs
    assert described.stdout.count(" ok") == len(topic_names(KafkaSettings(topic_prefix=secured)))
    outsider = {**env, "FUSEWATCH_KAFKA__SSL_CERTFILE": str(tls_file("outsider-client.pem")),
                "FUSEWATCH_KAFKA__SSL_KEYFILE": str(tls_file("outsider-client.key"))}
    refused, seconds = cli(outsider, "topics", "describe")
    assert refused.returncode == 2 and "is not authorized for topic" in refused.stderr
    assert seconds < TIMEOUT_S


def untrusted_ca(directory: Path) -> Path:
    """A CA of its own, which did not sign the broker's certificate (openssl, as an attacker's would be)."""
    key, certificate = directory / "other-ca.key", directory / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(certificate), "-days", "2", "-subj", "/CN=another CA"], check=True, capture_output=True)
    return certificate


@pytest.mark.parametrize("case", ["wrong password", "no TLS", "untrusted certificate", "no ACLs"])
def test_a_refused_client_gets_one_clear_prompt_error_and_writes_nothing(secured: str, case: str,
                                                                         tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    env, expected = {
        "wrong password": (secured_env(secured, FUSEWATCH_KAFKA__SASL_PASSWORD_FILE=str(wrong)),
                           "refused User:fusewatch: [Error 58] SaslAuthenticationFailed"),
        "no TLS": (secured_env(secured, FUSEWATCH_KAFKA__SECURITY_PROTOCOL="PLAINTEXT",
                               FUSEWATCH_KAFKA__SASL_USERNAME="", FUSEWATCH_KAFKA__SASL_PASSWORD_FILE=""),
                   "closed the connection of this PLAINTEXT client: the listener wants TLS"),
        "untrusted certificate": (secured_env(secured, FUSEWATCH_KAFKA__SSL_CAFILE=str(untrusted_ca(tmp_path))),
                                  "the broker's TLS certificate is not trusted"),
        "no ACLs": (secured_env(secured, "outsider"), "User:outsider is not authorized for topic"),
    }[case]
    before = end_offsets(secured)
    done, seconds = cli(env, "simulate", "--assets", "1", "--days", "0.01", "--speed", "max", "--no-progress")
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors == [errors[-1]] and errors[-1].startswith("fusewatch: error: "), done.stderr
    assert expected in errors[-1], errors[-1]
    assert seconds < TIMEOUT_S + 4.0, f"{case}: {seconds:.1f} s"  # the interpreter's start-up is in it too
    assert end_offsets(secured) == before  # nothing written


def test_a_wrong_influxdb_password_is_one_clear_error(secured: str, auth_influx: AuthInflux, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("nope\n")
    env = {**secured_env(secured), "FUSEWATCH_INFLUX__URL": auth_influx.url,
           "FUSEWATCH_INFLUX__DATABASE": auth_influx.database, "FUSEWATCH_INFLUX__USERNAME": auth_influx.user,
           "FUSEWATCH_INFLUX__PASSWORD_FILE": str(wrong)}
    done, _ = cli(env, "sink", "--stop-when-idle", "2")
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2
    assert errors == [f"fusewatch: error: InfluxDB at {auth_influx.url} refused user 'fusewatch': authorization"
                      " failed (check influx.username and influx.password)"]


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    secret_path = tmp_path / "influx.password"
    secret_path.write_text("file-secret-4711")
    env = {"FUSEWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "FUSEWATCH_KAFKA__SASL_USERNAME": "fusewatch",
           "FUSEWATCH_KAFKA__SASL_PASSWORD": "env-secret-0815", "FUSEWATCH_INFLUX__USERNAME": "fusewatch",
           "FUSEWATCH_INFLUX__PASSWORD_FILE": str(secret_path)}
    shown, _ = cli(env, "config")
    assert shown.returncode == 0, shown.stderr
    assert "env-secret-0815" not in shown.stdout and "file-secret-4711" not in shown.stdout
    assert '# sasl_password = "***"' in shown.stdout
    assert f"password_file = {json.dumps(str(secret_path))}" in shown.stdout
    # the printed configuration reads back (the secret itself stays in the environment)
    saved = tmp_path / "config.toml"
    saved.write_text(shown.stdout)
    again, _ = cli(env, "config", "--config", str(saved))
    assert again.returncode == 0 and again.stdout == shown.stdout


def test_debug_logs_hold_no_password(secured: str) -> None:
    """kafka-python logs an admin client's whole configuration at DEBUG; the password in it is shown as ***."""
    done, _ = cli(secured_env(secured), "--log-level", "DEBUG", "topics", "describe")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sasl_plain_password': '***'" in done.stderr
    assert secret_file("fusewatch").read_text() not in done.stderr + done.stdout


def test_the_demo_writes_to_an_influxdb_with_authentication(auth_influx: AuthInflux, tmp_path: Path) -> None:
    env = {"FUSEWATCH_INFLUX__URL": auth_influx.url, "FUSEWATCH_INFLUX__DATABASE": auth_influx.database,
           "FUSEWATCH_INFLUX__USERNAME": auth_influx.user,
           "FUSEWATCH_INFLUX__PASSWORD_FILE": str(auth_influx.password_file)}
    before = auth_influx.count("fusewatch_score")
    done, _ = cli(env, "demo", "--assets", "1", "--days", "0.05", "--seed", "4", "--out", str(tmp_path / "demo"),
                  "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"points to {auth_influx.url} ({auth_influx.database})" in done.stdout
    assert auth_influx.count("fusewatch_score") > before
