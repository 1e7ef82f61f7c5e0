"""`fusewatch demo --webhook`: every alert transition reaches a real receiver once, signed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from standardwebhooks import Webhook

from connectors.webhooks.signing import WebhookSecret
from tests.loopback import RecordingReceiver, serving

RECEIVED: list[tuple[dict[str, str], bytes]] = []


class Receiver(RecordingReceiver):
    received = RECEIVED


def test_every_alert_transition_is_delivered_once_and_verifies(tmp_path: Path) -> None:
    config = tmp_path / "alerty.toml"  # alerts open after an hour: a short run has some to deliver
    config.write_text("[models]\nwarmup_windows = 60\ncalibration_min_samples = 10\nlearn_delay = 0\n"
                      "[alerts]\nopen_threshold = 0.05\nclose_threshold = 0.02\nclose_windows = 5\ncooldown_s = 60\n")
    secret = WebhookSecret.generate()
    RECEIVED.clear()
    with serving(Receiver) as port:
        secret_file = tmp_path / "webhook.secret"  # the documented form: a file (or $FUSEWATCH_WEBHOOK_SECRET)
        secret_file.write_text(str(secret))
        command = [sys.executable, "-m", "fusewatch.cli", "demo", "--assets", "2", "--days", "0.25", "--out",
                   str(tmp_path / "out"), "--config", str(config), "--webhook", f"http://127.0.0.1:{port}/hook",
                   "--webhook-secret-file", str(secret_file), "--allow-private-webhooks", "--no-progress"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "out" / "fusewatch.sqlite") as db:
        transitions = db.execute("SELECT alert_id, transition FROM alerts").fetchall()
    assert transitions, "the configuration should have opened alerts"
    assert f"webhooks: delivered {len(transitions)}" in done.stdout
    delivered = [(json.loads(body)["alert_id"], json.loads(body)["transition"]) for _, body in RECEIVED]
    assert sorted(delivered) == sorted(transitions)  # each transition once
    assert len({headers["webhook-id"] for headers, _ in RECEIVED}) == len(RECEIVED)
    for headers, body in RECEIVED:
        Webhook(str(secret)).verify(body, headers)
    elsewhere = [str(tmp_path / "blocked") if part == str(tmp_path / "out") else part for part in command[:-4]]
    blocked = subprocess.run([*elsewhere, "--webhook-secret-file", str(secret_file), "--no-progress"],
                             capture_output=True, text=True, timeout=600, check=False)
    assert blocked.returncode == 0, blocked.stderr
    assert str(secret) not in done.stderr + done.stdout + blocked.stderr + blocked.stdout
    assert "webhooks: dead" in blocked.stdout  # loopback refused without --allow-private-webhooks
