"""Webhook delivery: a durable outbox, signed POSTs to pinned addresses, retries with jittered backoff.

:meth:`WebhookSender.submit` only writes the alert to the outbox (SQLite, one row per endpoint and
``webhook-id``), so scoring never waits for the network; a background thread (:meth:`WebhookSender.start`) or
the caller (:meth:`WebhookSender.deliver_due`) sends what is due. The rules, from the Standard Webhooks
specification:

- only a 2xx answer is a delivery; a redirect is not followed (it is a failure);
- 410 Gone disables the endpoint: its pending and later deliveries are kept, marked ``disabled``, until an
  operator calls :meth:`WebhookSender.enable`;
- 429 and 503 with ``Retry-After`` are retried no earlier than it says (capped at ``max_backoff_s``);
- any other failure (5xx, timeout, refused connection) is retried after ``base_backoff_s * 2**attempt``,
  ±``jitter``, capped at ``max_backoff_s``; after ``attempts`` tries the delivery is dead-lettered (kept with
  the last error, :meth:`WebhookSender.replay` puts it back);
- every retry carries the same ``webhook-id`` and a fresh timestamp and signature; the outbox holds one row per
  (endpoint, id), so an alert submitted twice (a replayed stream) is delivered once;
- the outbox survives a restart: what was pending is sent by the next process.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from connectors.webhooks.signing import WebhookSecret, sign_headers
from connectors.webhooks.targets import Target, resolve_target
from fusewatch.core.errors import BlockedTargetError

log = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]
_RANK = {"warning": 0, "critical": 1}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    endpoint TEXT NOT NULL, webhook_id TEXT NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL, state TEXT NOT NULL DEFAULT 'pending', last_error TEXT, delivered_at REAL,
    PRIMARY KEY (endpoint, webhook_id));
CREATE INDEX IF NOT EXISTS due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS disabled_endpoints (endpoint TEXT PRIMARY KEY, disabled_at REAL NOT NULL, reason TEXT);
"""


@dataclass(frozen=True)
class Endpoint:
    """One receiver: its URL, signing secret, the least severe alert it wants, and the SSRF exemption."""

    url: str
    secret: WebhookSecret
    min_severity: Severity = "warning"
    allow_private: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for an answer, and how to space and bound the retries."""

    attempts: int = 10
    timeout_s: float = 15.0
    base_backoff_s: float = 30.0
    max_backoff_s: float = 6 * 3600.0
    jitter: float = 0.2

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds before retry number ``attempt`` (1 = the first retry)."""
        delay = min(self.max_backoff_s, self.base_backoff_s * 2.0 ** (attempt - 1))
        return delay * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: the status (``None`` when no answer came) and ``Retry-After`` seconds."""

    status: int | None
    retry_after_s: float | None
    error: str


def webhook_id(alert_id: str, transition: str) -> str:
    """The delivery id of one alert transition: the same for every retry and every replay of the stream."""
    return "msg_" + hashlib.sha256(f"{alert_id}|{transition}".encode()).hexdigest()[:24]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pinned address, the certificate checked against the URL's host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(target: Target, body: bytes, headers: dict[str, str], timeout_s: float) -> Attempt:
    """POST ``body`` to the pinned address of ``target``; never raises for network trouble."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target, timeout_s)
    else:
        connection = http.client.HTTPConnection(target.address, target.port, timeout=timeout_s)
    try:
        connection.request("POST", target.path, body=body, headers={
            **headers, "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
            "Content-Type": "application/json", "User-Agent": "fusewatch-webhooks",
        })
        response = connection.getresponse()
        response.read(64 * 1024)
        retry_after = response.getheader("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
        return Attempt(response.status, seconds, f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(None, None, f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


class WebhookSender:
    """Delivers alert JSON to the endpoints through a durable outbox (see the module docstring).

    ``send`` is the network seam (default :func:`post`); ``clock`` gives Unix seconds.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        outbox: Path,
        policy: RetryPolicy | None = None,
        send: Callable[[Target, bytes, dict[str, str], float], Attempt] = post,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        self.endpoints = {e.url: e for e in endpoints}
        self.policy = policy or RetryPolicy()
        self._send = send
        self._clock = clock
        self._rng = random.Random(seed)
        outbox.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(outbox, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def submit(self, alert_id: str, transition: str, severity: Severity, body: bytes) -> int:
        """Queue one alert transition for every endpoint that wants its severity; returns how many."""
        ident = webhook_id(alert_id, transition)
        queued = 0
        with self._lock:
            disabled = {url for (url,) in self._db.execute("SELECT endpoint FROM disabled_endpoints")}
            for endpoint in self.endpoints.values():
                if _RANK[severity] >= _RANK[endpoint.min_severity]:
                    state = "disabled" if endpoint.url in disabled else "pending"
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO deliveries (endpoint, webhook_id, body, next_at, state)"
                        " VALUES (?, ?, ?, ?, ?)", (endpoint.url, ident, body, self._clock(), state))
                    queued += cursor.rowcount
        return queued

    def deliver_due(self, url: str | None = None) -> int:
        """Try every delivery that is due now (to ``url`` only, when given), once; returns how many were delivered.

        Stops early when :meth:`stop` was called (what is left stays due).
        """
        now = self._clock()
        only = "" if url is None else " AND endpoint = ?"
        with self._lock:
            due = self._db.execute(
                "SELECT endpoint, webhook_id, body, attempts FROM deliveries WHERE state = 'pending' AND next_at <= ?"
                + only + " ORDER BY next_at", (now,) if url is None else (now, url)).fetchall()
        delivered = 0
        for url, ident, body, attempts in due:
            if self._stop.is_set():
                break
            endpoint = self.endpoints.get(url)
            if endpoint is None or self._is_disabled(url):
                continue  # an endpoint no longer configured, or disabled during this pass: kept
            delivered += self._attempt(endpoint, ident, bytes(body), attempts + 1)
        return delivered

    def _is_disabled(self, url: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM disabled_endpoints WHERE endpoint = ?", (url,)).fetchone()
        return row is not None

    def enable(self, url: str) -> int:
        """Re-enable an endpoint disabled by a 410; its disabled deliveries are queued again. Returns how many."""
        with self._lock:
            self._db.execute("DELETE FROM disabled_endpoints WHERE endpoint = ?", (url,))
            cursor = self._db.execute("UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?"
                                      " WHERE endpoint = ? AND state = 'disabled'", (self._clock(), url))
        return cursor.rowcount

    def _attempt(self, endpoint: Endpoint, ident: str, body: bytes, attempt: int) -> int:
        try:
            target = resolve_target(endpoint.url, endpoint.allow_private)
        except BlockedTargetError as exc:
            self._finish(endpoint.url, ident, attempt, "dead", str(exc))
            log.error("webhook %s to %s refused: %s", ident, endpoint.url, exc)
            return 0
        headers = sign_headers(endpoint.secret, ident, int(self._clock()), body)
        result = self._send(target, body, headers, self.policy.timeout_s)
        if result.status is not None and 200 <= result.status < 300:
            self._finish(endpoint.url, ident, attempt, "delivered", None)
            return 1
        if result.status == 410:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO disabled_endpoints VALUES (?, ?, ?)",
                                 (endpoint.url, self._clock(), "410 Gone"))
                self._db.execute("UPDATE deliveries SET state = 'disabled', last_error = ? WHERE endpoint = ?"
                                 " AND state = 'pending'", ("410 Gone: endpoint disabled", endpoint.url))
            log.error("webhook endpoint %s answered 410 Gone: disabled", endpoint.url)
            return 0
        if attempt >= self.policy.attempts:
            self._finish(endpoint.url, ident, attempt, "dead", result.error)
            log.error("webhook %s to %s dead-lettered after %d attempts: %s", ident, endpoint.url, attempt,
                      result.error)
            return 0
        wait = self.policy.backoff(attempt, self._rng)
        if result.status in (429, 503) and result.retry_after_s is not None:
            wait = min(self.policy.max_backoff_s, max(wait, result.retry_after_s))
        with self._lock:
            self._db.execute("UPDATE deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE endpoint = ?"
                             " AND webhook_id = ?", (attempt, self._clock() + wait, result.error, endpoint.url, ident))
        return 0

    def _finish(self, url: str, ident: str, attempt: int, state: str, error: str | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET attempts = ?, state = ?, last_error = ?, delivered_at = ? WHERE endpoint = ?"
                " AND webhook_id = ?",
                (attempt, state, error, self._clock() if state == "delivered" else None, url, ident))

    def states(self) -> dict[str, int]:
        """How many deliveries are in each state (pending, delivered, dead, disabled)."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
        return {state: int(count) for state, count in rows}

    def replay(self, webhook_id: str) -> int:
        """Put a dead-lettered delivery back in the queue (after the receiver is fixed)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ? WHERE webhook_id = ?"
                " AND state = 'dead'", (self._clock(), webhook_id))
        return cursor.rowcount

    def start(self, interval_s: float = 0.5) -> None:
        """Deliver in background threads, one per endpoint (a receiver that hangs delays only its own
        deliveries), until :meth:`stop`."""
        def loop(url: str) -> None:
            while not self._stop.wait(interval_s):
                self.deliver_due(url)
        for number, url in enumerate(self.endpoints):
            thread = threading.Thread(target=loop, args=(url,), name=f"fusewatch-webhooks-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, wait_s: float = 2.0) -> None:
        """Stop the background threads and close the outbox (pending deliveries stay in it).

        A thread still waiting for a receiver's answer after ``wait_s`` is left to finish its request (it records
        the outcome); the outbox is then closed when the process exits rather than under its feet.
        """
        self._stop.set()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        busy = [thread.name for thread in self._threads if thread.is_alive()]
        if busy:
            log.warning("webhook delivery still waiting for an answer in %s; the outbox keeps the delivery"
                        " pending", ", ".join(busy))
            return
        self._db.close()
