"""``fusewatch grafana push`` against a fake Grafana on loopback: the wire contract of Grafana's HTTP API.

No Grafana server can run on this machine, so a local HTTP server answers like Grafana 11's API does (the routes
grafana-client calls: data sources by uid, folders, ``POST /api/dashboards/db``) and records every request.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.grafana.dashboards import dashboards, datasource
from connectors.grafana.push import push
from fusewatch.cli import main
from fusewatch.core.errors import FusewatchError, GrafanaPushError, GrafanaUnreachableError
from tests.loopback import QuietHandler, serving

TOKEN = "glsa_test-token-0123456789"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """Grafana's state (data sources, folders, dashboards by uid) and the requests it received."""

    token: str = TOKEN
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail_with: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Request) -> tuple[int, Any]:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}
        if self.fail_with is not None:
            return self.fail_with, {"message": "internal error"}
        method, path, body = request.method, request.path, request.body
        if match := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path):
            uid = match[1]
            if uid not in self.datasources:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, self.datasources[uid]
            if method == "PUT":
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {"datasource": self.datasources[uid], "message": "Datasource updated"}
        if path == "/api/datasources" and method == "POST":
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            self.datasources[body["uid"]] = {**body, "id": len(self.datasources) + 1}
            return 200, {"datasource": self.datasources[body["uid"]], "message": "Datasource added"}
        if (match := re.fullmatch(r"/api/folders/([\w-]+)", path)) and method == "GET":
            if match[1] not in self.folders:
                return 404, {"message": "folder not found", "status": "not-found"}
            return 200, self.folders[match[1]]
        if path == "/api/folders" and method == "POST":
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same name already exists"}
            self.folders[body["uid"]] = {**body, "id": len(self.folders) + 1}
            return 200, self.folders[body["uid"]]
        if path == "/api/dashboards/db" and method == "POST":
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            uid = body["dashboard"]["uid"]
            if uid in self.dashboards and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {**body, "version": version}
            return 200, {"id": 1, "uid": uid, "status": "success", "version": version,
                         "url": f"/d/{uid}/{body['dashboard']['title']}", "slug": uid}
        return 404, {"message": "Not found"}


@pytest.fixture()
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(QuietHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              json.loads(raw) if raw else None)
            with state.lock:
                state.requests.append(request)
                status, answer = state.answer(request)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    with serving(Handler) as port:
        yield state, f"http://127.0.0.1:{port}"


def _calls(state: FakeGrafana) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in state.requests]


def test_the_first_push_creates_everything_with_the_token(grafana: tuple[FakeGrafana, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    state, url = grafana
    status = main(["grafana", "push", "--url", url, "--token", TOKEN, "--influx-url", "http://influx.example:8086",
                   "--influx-db", "plant"])
    assert status == 0
    assert _calls(state) == [
        ("GET", "/api/datasources/uid/fusewatch-influxdb"),
        ("POST", "/api/datasources"),
        ("GET", "/api/folders/fusewatch"),
        ("POST", "/api/folders"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in state.requests)
    created = state.requests[1].body
    assert created["uid"] == "fusewatch-influxdb" and created["type"] == "influxdb" and created["access"] == "proxy"
    assert created["url"] == "http://influx.example:8086" and created["database"] == "plant"
    assert created["jsonData"] == {"version": "InfluxQL", "dbName": "plant", "httpMode": "POST"}
    assert "secureJsonData" not in created
    assert state.requests[3].body == {"title": "fusewatch", "uid": "fusewatch"}
    posted = [r.body for r in state.requests[4:]]
    assert [b["dashboard"]["uid"] for b in posted] == ["fusewatch-fleet", "fusewatch-asset", "fusewatch-pipeline"]
    for body, expected in zip(posted, dashboards(), strict=True):
        assert body["overwrite"] is True and body["folderUid"] == "fusewatch"
        assert body["dashboard"] == expected
    out = capsys.readouterr().out
    assert "data source fusewatch-influxdb created" in out and "folder fusewatch created" in out
    assert "/d/fusewatch-asset/" in out and TOKEN not in out


def test_a_second_push_updates_instead_of_duplicating(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    payload = datasource("http://influxdb:8086", "fusewatch", token="influx-secret")
    first = push(url, TOKEN, payload)
    assert (first.datasource, first.folder) == ("created", "created")
    state.requests.clear()
    second = push(url, TOKEN, payload)
    assert (second.datasource, second.folder) == ("updated", "exists")
    assert _calls(state) == [
        ("GET", "/api/datasources/uid/fusewatch-influxdb"),
        ("PUT", "/api/datasources/uid/fusewatch-influxdb"),
        ("GET", "/api/folders/fusewatch"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
    ]
    updated = state.requests[1].body
    assert updated["jsonData"]["httpHeaderName1"] == "Authorization"
    assert updated["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    assert len(state.datasources) == 1 and len(state.folders) == 1
    assert sorted(state.dashboards) == ["fusewatch-asset", "fusewatch-fleet", "fusewatch-pipeline"]
    assert {d["version"] for d in state.dashboards.values()} == {2}  # overwritten, not copied


def test_the_token_can_come_from_the_environment(grafana: tuple[FakeGrafana, str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    state, url = grafana
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert main(["grafana", "push", "--url", url, "--folder", "plant-a"]) == 0
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in state.requests)
    assert {b.body["folderUid"] for b in state.requests if b.path == "/api/dashboards/db"} == {"plant-a"}
    monkeypatch.delenv("GRAFANA_TOKEN")
    assert main(["grafana", "push", "--url", url]) == 2
    assert "needs a token: the environment variable GRAFANA_TOKEN (or --token)" in capsys.readouterr().err


def test_influxdb_credentials_come_from_the_environment(grafana: tuple[FakeGrafana, str],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    state, url = grafana
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("FUSEWATCH_INFLUX__TOKEN", "influx-from-env")
    assert main(["grafana", "push", "--url", url]) == 0
    created = state.requests[1].body
    assert created["secureJsonData"] == {"httpHeaderValue1": "Token influx-from-env"}
    assert not caplog.text  # nothing secret on the command line, nothing to warn about
    with caplog.at_level("WARNING"):
        assert main(["grafana", "push", "--url", url, "--influx-token", "influx-on-the-command-line"]) == 0
    assert "--influx-token on the command line is visible" in caplog.text
    assert "influx-on-the-command-line" not in caplog.text


def test_a_refused_token_is_a_clear_error_naming_url_and_status(grafana: tuple[FakeGrafana, str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    state, url = grafana
    with pytest.raises(GrafanaPushError) as caught:
        push(url, "wrong-token", datasource("http://influxdb:8086", "fusewatch"))
    assert caught.value.status == 401 and caught.value.url == url
    assert str(caught.value) == (f"Grafana at {url} answered GET /api/datasources/uid/fusewatch-influxdb with HTTP"
                                 " 401: the token was refused: check --token or GRAFANA_TOKEN")
    assert main(["grafana", "push", "--url", url, "--token", "wrong-token"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fusewatch: error: Grafana at {url} answered") and "HTTP 401" in err
    assert "wrong-token" not in err
    assert not state.datasources and not state.dashboards


def test_server_errors_are_translated(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    state.fail_with = 500
    with pytest.raises(GrafanaPushError, match=r"HTTP 500: internal error") as caught:
        push(url, TOKEN, datasource("http://influxdb:8086", "fusewatch"))
    assert caught.value.status == 500
    state.fail_with = 403
    with pytest.raises(GrafanaPushError, match=r"HTTP 403: the token lacks permission"):
        push(url, TOKEN, datasource("http://influxdb:8086", "fusewatch"))


def test_an_unreachable_grafana_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(GrafanaUnreachableError, match=f"Grafana at {url} is unreachable") as caught:
        push(url, TOKEN, datasource("http://influxdb:8086", "fusewatch"), timeout_s=2)
    assert caught.value.status is None and isinstance(caught.value, FusewatchError)
    assert main(["grafana", "push", "--url", url, "--token", TOKEN, "--timeout", "2"]) == 2
    assert f"fusewatch: error: Grafana at {url} is unreachable" in capsys.readouterr().err


def test_a_url_path_prefix_is_kept(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    with pytest.raises(GrafanaPushError, match="HTTP 404"):
        push(f"{url}/grafana/", TOKEN, datasource("http://influxdb:8086", "fusewatch"))  # nothing serves there
    assert state.requests[-1].path == "/grafana/api/datasources"
    with pytest.raises(GrafanaPushError, match="a Grafana URL is http"):
        push("ftp://example", TOKEN, datasource("http://influxdb:8086", "fusewatch"))
