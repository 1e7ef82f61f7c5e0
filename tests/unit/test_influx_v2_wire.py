"""The v2 backend speaks the InfluxDB v2 write API exactly — checked against a local HTTP server.

No InfluxDB 2.x server can run on this machine (docs/influxdb.md); this test pins the wire contract instead:
``POST /api/v2/write?org=…&bucket=…&precision=ns``, ``Authorization: Token …``, a gzip body of line protocol.
"""

from __future__ import annotations

import gzip
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from connectors.sinks.influx.writers import InfluxV2Sink, detect_api
from fusewatch.core.errors import SinkRejectedError, SinkUnavailableError
from tests.loopback import QuietHandler, serving


@dataclass
class FakeV2:
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server() -> Iterator[FakeV2]:
    state = FakeV2()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.send_header("X-Influxdb-Version", "v2.7.11")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = state.answers.pop(0) if state.answers else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            payload = b'{"code":"invalid","message":"bad line"}' if status >= 400 else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


LINES = [f"fusewatch_score,asset_id=pump-01,run_id=live fused=0.{i} {i}000000000" for i in range(1, 6)]


def test_requests_match_the_v2_write_api(server: FakeV2) -> None:
    sink = InfluxV2Sink(server.url, org="plant", bucket="fusewatch", token="s3cret", batch_lines=3)
    sink.write(LINES)
    sink.close()
    assert len(server.requests) == 2  # 3 + 2 lines
    for (method, path, headers, body), expected in zip(server.requests, (LINES[:3], LINES[3:]), strict=True):
        url = urllib.parse.urlsplit(path)
        assert method == "POST" and url.path == "/api/v2/write"
        assert urllib.parse.parse_qs(url.query) == {"org": ["plant"], "bucket": ["fusewatch"], "precision": ["ns"]}
        assert headers["authorization"] == "Token s3cret"
        assert headers["content-encoding"] == "gzip"
        assert headers["content-type"].startswith("text/plain")
        assert gzip.decompress(body).decode().split("\n") == expected


def test_errors_are_raised_never_dropped(server: FakeV2) -> None:
    sink = InfluxV2Sink(server.url, org="plant", bucket="fusewatch", token="t")
    server.answers = [(503, {"Retry-After": "7"})]
    with pytest.raises(SinkUnavailableError) as unavailable:
        sink.write(LINES[:1])
    assert unavailable.value.retry_after_s == 7.0
    server.answers = [(400, {})]
    with pytest.raises(SinkRejectedError, match="400"):
        sink.write(LINES[:1])
    sink.close()


def test_a_v2_server_is_detected_from_ping(server: FakeV2) -> None:
    assert detect_api(server.url) == "v2"
