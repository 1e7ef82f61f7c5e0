"""Webhook delivery against a real HTTP receiver on loopback: one delivery per id, retries as specified."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from connectors.webhooks.delivery import Endpoint, RetryPolicy, WebhookSender, webhook_id
from connectors.webhooks.signing import WebhookSecret
from tests.loopback import QuietHandler, serving

SECRET = WebhookSecret.generate()
POLICY = RetryPolicy(attempts=4, timeout_s=0.5, base_backoff_s=10.0, max_backoff_s=100.0, jitter=0.0)


@dataclass
class Receiver:
    """Scripted answers per path (consumed one per request; then 200), and every request received."""

    script: dict[str, list[tuple[str, int, dict[str, str]]]] = field(default_factory=dict)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers), body))
            steps = state.script.get(self.path, [])
            kind, status, headers = steps.pop(0) if steps else ("status", 200, {})
            if kind == "hang":
                time.sleep(status / 1000)
                status = 200
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Handler) as port:
        state.port = port
        yield state


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _sender(receiver: Receiver, tmp_path: Path, path: str, clock: Clock, **endpoint: object) -> WebhookSender:
    url = f"http://localhost:{receiver.port}{path}"
    ep = Endpoint(url, SECRET, **{"allow_private": True, **endpoint})  # type: ignore[arg-type]
    return WebhookSender([ep], tmp_path / "outbox.sqlite", POLICY, clock=clock)


BODY = json.dumps({"alert_id": "a1", "transition": "opened", "asset_id": "pump-01"}).encode()


def _run(sender: WebhookSender, clock: Clock, seconds: float, step: float = 1.0) -> None:
    for _ in range(int(seconds / step)):
        sender.deliver_due()
        clock.now += step


def test_a_delivery_is_signed_and_verifies_with_the_reference_package(receiver: Receiver, tmp_path: Path) -> None:
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/ok", clock)
    assert sender.submit("a1", "opened", "warning", BODY) == 1
    assert receiver.received == []  # submitting never touches the network
    assert sender.deliver_due() == 1
    (path, headers, body), = receiver.received
    assert path == "/ok" and body == BODY
    assert headers["webhook-id"] == webhook_id("a1", "opened")
    assert Webhook(str(SECRET)).verify(body, headers)["asset_id"] == "pump-01"
    assert sender.submit("a1", "opened", "warning", BODY) == 0  # the same transition again: already queued
    assert sender.deliver_due() == 0 and len(receiver.received) == 1
    sender.stop()


def test_server_errors_and_timeouts_are_retried_with_the_same_id(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script["/flaky"] = [("status", 500, {}), ("hang", 1500, {}), ("status", 502, {})]
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/flaky", clock)
    sender.submit("a2", "opened", "critical", BODY)
    _run(sender, clock, 200)
    ids = {headers["webhook-id"] for _, headers, _ in receiver.received}
    assert len(receiver.received) == 4 and ids == {webhook_id("a2", "opened")}
    assert sender.states() == {"delivered": 1}
    sender.stop()


def test_retry_after_is_honoured(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script["/busy"] = [("status", 429, {"Retry-After": "60"})]
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/busy", clock)
    sender.submit("a3", "opened", "warning", BODY)
    start = clock.now
    sender.deliver_due()
    _run(sender, clock, 59)
    assert len(receiver.received) == 1  # not before the 60 s it asked for (the backoff alone would be 10 s)
    _run(sender, clock, 3)
    assert len(receiver.received) == 2 and sender.states() == {"delivered": 1}
    assert clock.now - start >= 60
    sender.stop()


def test_410_disables_the_endpoint_and_the_last_failure_dead_letters(receiver: Receiver, tmp_path: Path) -> None:
    receiver.script["/gone"] = [("status", 410, {})]
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/gone", clock)
    sender.submit("a4", "opened", "warning", BODY)
    sender.submit("a5", "opened", "warning", BODY)
    _run(sender, clock, 50)
    assert len(receiver.received) == 1 and sender.states() == {"disabled": 2}
    sender.submit("a4b", "opened", "warning", BODY)  # later alerts wait too
    _run(sender, clock, 50)
    assert len(receiver.received) == 1 and sender.states() == {"disabled": 3}
    assert sender.enable(f"http://localhost:{receiver.port}/gone") == 3  # the operator fixed the receiver
    _run(sender, clock, 5)
    assert len(receiver.received) == 4 and sender.states() == {"delivered": 3}
    sender.stop()

    receiver.script["/down"] = [("status", 500, {})] * 10
    failing = _sender(receiver, tmp_path / "2", "/down", clock)
    failing.submit("a6", "opened", "warning", BODY)
    _run(failing, clock, 400)
    assert sum(path == "/down" for path, _, _ in receiver.received) == POLICY.attempts
    assert failing.states() == {"dead": 1}
    assert failing.replay(webhook_id("a6", "opened")) == 1
    _run(failing, clock, 400)
    assert failing.states() == {"dead": 1}  # still failing: dead-lettered again after another round
    failing.stop()


def test_min_severity_filters_and_a_restart_delivers_what_was_pending(receiver: Receiver, tmp_path: Path) -> None:
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/pager", clock, min_severity="critical")
    assert sender.submit("a7", "opened", "warning", BODY) == 0
    assert sender.submit("a7", "escalated", "critical", BODY) == 1
    sender.stop()  # the process ends before delivering
    restarted = _sender(receiver, tmp_path, "/pager", clock, min_severity="critical")
    assert restarted.deliver_due() == 1
    assert [h["webhook-id"] for _, h, _ in receiver.received] == [webhook_id("a7", "escalated")]
    restarted.stop()


def test_blocked_targets_receive_nothing(receiver: Receiver, tmp_path: Path) -> None:
    clock = Clock()
    sender = _sender(receiver, tmp_path, "/internal", clock, allow_private=False)
    sender.submit("a8", "opened", "warning", BODY)
    _run(sender, clock, 20)
    assert receiver.received == [] and sender.states() == {"dead": 1}
    sender.stop()


def test_the_background_thread_delivers(receiver: Receiver, tmp_path: Path) -> None:
    sender = _sender(receiver, tmp_path, "/bg", Clock())
    sender.start(interval_s=0.05)
    sender.submit("a9", "opened", "warning", BODY)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not receiver.received:
        time.sleep(0.05)
    sender.stop()
    assert len(receiver.received) == 1


def test_a_hanging_receiver_delays_only_its_own_deliveries(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    receiver.script["/hangs"] = [("hang", 3000, {}), ("hang", 3000, {})]
    endpoints = [Endpoint(f"http://localhost:{receiver.port}{path}", SECRET, allow_private=True)
                 for path in ("/hangs", "/fine")]
    sender = WebhookSender(endpoints, tmp_path / "outbox.sqlite", RetryPolicy(timeout_s=5.0, base_backoff_s=10.0))
    sender.start(interval_s=0.05)
    sender.submit("a10", "opened", "warning", BODY)
    sender.submit("a11", "opened", "warning", BODY)

    def fine() -> int:
        return sum(path == "/fine" for path, _, _ in receiver.received)

    started = time.monotonic()
    while time.monotonic() - started < 10 and fine() < 2:
        time.sleep(0.02)
    waited = time.monotonic() - started
    assert fine() == 2 and waited < 2.0, f"the healthy receiver waited {waited:.1f} s behind the hanging one"
    stopping = time.monotonic()
    sender.stop(wait_s=0.5)  # the hanging request is still open
    assert time.monotonic() - stopping < 1.5
    time.sleep(3.5)  # the hanging request ends; its thread records the outcome and exits cleanly
    assert errors == []
