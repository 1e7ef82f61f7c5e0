"""The v2 backend speaks the InfluxDB v2 write API exactly — checked against a local HTTP server.

No InfluxDB 2.x server can run on this machine (docs/influxdb.md); this test pins the wire contract instead:
``POST /api/v2/write?org=…&bucket=…&precision=ns``, ``Authorization: Token …``, a gzip body of line protocol
(the stand-in, ``tests/influx_v2.py``, refuses anything else; the sink conformance suite uses it too).
"""

from __future__ import annotations

import gzip
import urllib.parse
from collections.abc import Iterator

import pytest

from connectors.sinks.influx.writers import InfluxV2Sink, detect_api
from fusewatch.core.errors import SinkBackpressureError, SinkRejectedError, SinkUnavailableError
from tests.influx_v2 import InfluxV2Double, influx_v2_double


@pytest.fixture
def server() -> Iterator[InfluxV2Double]:
    with influx_v2_double() as double:
        yield double
    assert not double.violations


LINES = [f"fusewatch_score,asset_id=pump-01,run_id=live fused=0.{i} {i}000000000" for i in range(1, 6)]


def test_requests_match_the_v2_write_api(server: InfluxV2Double) -> None:
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
    assert [point.fields["fused"] for point in server.stored("fusewatch_score")] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_errors_are_raised_never_dropped(server: InfluxV2Double) -> None:
    sink = InfluxV2Sink(server.url, org="plant", bucket="fusewatch", token="s3cret")
    server.answers = [(503, {"Retry-After": "7"})]
    with pytest.raises(SinkUnavailableError) as unavailable:
        sink.write(LINES[:1])
    assert unavailable.value.retry_after_s == 7.0
    server.answers = [(429, {"Retry-After": "2"})]  # "slow down": back-pressure, not an outage
    with pytest.raises(SinkBackpressureError) as slow_down:
        sink.write(LINES[:1])
    assert not isinstance(slow_down.value, SinkUnavailableError) and slow_down.value.retry_after_s == 2.0
    server.answers = [(400, {})]
    with pytest.raises(SinkRejectedError, match="400"):
        sink.write(LINES[:1])
    sink.close()


def test_a_v2_server_is_detected_from_ping(server: InfluxV2Double) -> None:
    assert detect_api(server.url) == "v2"


def test_the_stand_in_refuses_what_breaks_the_contract(server: InfluxV2Double) -> None:
    wrong_bucket = InfluxV2Sink(server.url, org="plant", bucket="other", token="s3cret")
    with pytest.raises(SinkRejectedError, match="400"):
        wrong_bucket.write(LINES[:1])
    wrong_bucket.close()
    assert server.violations == ["not the v2 write endpoint with org, bucket and precision=ns: "
                                 + server.requests[0][1]]
    server.violations.clear()
