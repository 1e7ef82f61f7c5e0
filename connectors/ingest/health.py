"""A bridge's health: one log line every ``every_s`` seconds and a JSON endpoint (``--health-port``).

``GET http://127.0.0.1:PORT/health`` answers 200 with the bridge's counters while it is connected to its source
and Kafka acknowledged a message (or had nothing to acknowledge) within ``stale_s``, else 503 with the same body,
so a supervisor (systemd, Kubernetes) can restart a bridge that is stuck.

>>> health = BridgeHealth("mqtt", lambda: {"sent": 3, "pending": 0, "kafka_ok_s_ago": 0.5})
>>> health.source_connected = True
>>> health.count("received", 3)
>>> status, body = health.report()
>>> status, body["received"], body["source_connected"], body["sent"]
(200, 3, True, 3)
>>> health.line()
'mqtt bridge: source connected, received 3, sent 3, pending 0, kafka_ok_s_ago 0.5'
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class BridgeHealth:
    """Counters of a bridge (``count``), whether its source is connected, and the gateway's statistics."""

    def __init__(self, name: str, gateway_stats: Callable[[], dict[str, Any]], stale_s: float = 60.0) -> None:
        self.name = name
        self.gateway_stats = gateway_stats
        self.stale_s = stale_s
        self.source_connected = False
        self.counters: Counter[str] = Counter()
        self.details: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counters[name] += amount

    def report(self) -> tuple[int, dict[str, Any]]:
        """HTTP status (200 healthy, 503 not) and the body."""
        with self._lock:
            body: dict[str, Any] = {"bridge": self.name, "source_connected": self.source_connected,
                                    **dict(self.counters)}
        body.update(self.gateway_stats())
        body.update(self.details)
        stale = body.get("pending", 0) > 0 and body.get("kafka_ok_s_ago", 0.0) > self.stale_s
        healthy = self.source_connected and not stale
        body["healthy"] = healthy
        return (200 if healthy else 503), body

    def line(self) -> str:
        _, body = self.report()
        state = "source connected" if body["source_connected"] else "SOURCE DISCONNECTED"
        shown = [f"{key} {body.get(key, 0)}" for key in ("received", "sent", "dead_letters", "failed", "pending",
                                                         "reconnects", "kafka_ok_s_ago")
                 if body.get(key) or key in ("received", "sent", "pending")]
        return f"{self.name} bridge: {state}, " + ", ".join(shown)

    def start(self, port: int | None, every_s: float = 30.0) -> None:
        """Log :meth:`line` every ``every_s`` seconds, and serve ``/health`` on 127.0.0.1:``port`` if given."""
        threading.Thread(target=self._log_loop, args=(every_s,), name=f"{self.name}-health", daemon=True).start()
        if port is None:
            return
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/health":
                    self.send_error(404, "try /health")
                    return
                status, body = health.report()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, name=f"{self.name}-health-http", daemon=True).start()
        log.info("%s bridge health on http://127.0.0.1:%d/health", self.name, self._server.server_address[1])

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_address[1])

    def _log_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            log.info("%s", self.line())

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
