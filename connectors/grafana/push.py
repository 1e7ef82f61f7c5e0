"""Provision a running Grafana over its HTTP API with grafana-client: data source, folder, dashboards.

Idempotent: the data source (uid ``fusewatch-influxdb``) is created, or updated when it exists; the folder is
created when missing; every dashboard is posted with ``overwrite: true`` into the folder, so pushing again
replaces the same dashboards (same uids) instead of adding copies. Every failure is a :class:`GrafanaPushError`
naming the Grafana URL, the request and the HTTP status (``None`` when Grafana could not be reached).
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.grafana.dashboards import dashboards
from connectors.grafana.panels import DATASOURCE_UID, Json
from fusewatch.core.errors import GrafanaPushError, GrafanaUnreachableError

HINTS = {
    401: "the token was refused: check --token or GRAFANA_TOKEN",
    403: "the token lacks permission: data sources need an Admin service account, folders and dashboards Editor",
}


@dataclass
class PushReport:
    """What a push did: ``created``/``updated`` for the data source, ``created``/``exists`` for the folder."""

    datasource: str = ""
    folder: str = ""
    dashboards: list[str] = field(default_factory=list)


def _client(url: str, token: str, timeout_s: float) -> Any:
    from grafana_client.api import GrafanaApi  # imported here: only `grafana push` needs it

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GrafanaPushError(f"{url}: a Grafana URL is http(s)://host[:port][/path]", url, None)
    prefix = parts.path.strip("/")
    return GrafanaApi(auth=token, host=parts.hostname, port=parts.port, protocol=parts.scheme,
                      url_path_prefix=f"{prefix}/" if prefix else "", timeout=timeout_s)


def _call(url: str, request: str, action: Callable[[], Any], missing_ok: bool = False) -> Any:
    """Run one API call; translate grafana-client's and niquests' errors. ``missing_ok``: 404 returns None."""
    from grafana_client.client import GrafanaException, GrafanaTimeoutError
    from niquests.exceptions import RequestException

    try:
        return action()
    except GrafanaTimeoutError as exc:
        raise GrafanaUnreachableError(f"Grafana at {url} did not answer {request} in time: {exc.message}",
                                      url, None) from exc
    except GrafanaException as exc:
        status = int(exc.status_code)
        if status == 404 and missing_ok:
            return None
        if status == 0:
            raise GrafanaUnreachableError(f"Grafana at {url} is unreachable ({request}): {exc.message}",
                                          url, None) from exc
        detail = exc.response.get("message") if isinstance(exc.response, dict) else exc.response
        hint = HINTS.get(status, str(detail or exc.message)[:300])
        raise GrafanaPushError(f"Grafana at {url} answered {request} with HTTP {status}: {hint}",
                               url, status) from exc
    except (RequestException, OSError) as exc:
        raise GrafanaUnreachableError(f"Grafana at {url} is unreachable ({request}): {exc}", url, None) from exc


def push(url: str, token: str, datasource_payload: Json, folder: str = "fusewatch",
         documents: Sequence[Json] | None = None, timeout_s: float = 10.0) -> PushReport:
    """Create or update the data source, create the folder if missing and post the dashboards into it."""
    api = _client(url, token, timeout_s)
    report = PushReport()
    try:
        uid = datasource_payload["uid"]
        existing = _call(url, f"GET /api/datasources/uid/{uid}",
                         lambda: api.datasource.get_datasource_by_uid(uid), missing_ok=True)
        if existing is None:
            _call(url, "POST /api/datasources", lambda: api.datasource.create_datasource(datasource_payload))
            report.datasource = "created"
        else:
            _call(url, f"PUT /api/datasources/uid/{uid}",
                  lambda: api.datasource.update_datasource_by_uid(uid, datasource_payload))
            report.datasource = "updated"
        if _call(url, f"GET /api/folders/{folder}", lambda: api.folder.get_folder(folder), missing_ok=True) is None:
            _call(url, "POST /api/folders", lambda: api.folder.create_folder(folder, uid=folder))
            report.folder = "created"
        else:
            report.folder = "exists"
        for document in dashboards() if documents is None else documents:
            body = {"dashboard": document, "folderUid": folder, "overwrite": True,
                    "message": "fusewatch grafana push"}
            answer = _call(url, f"POST /api/dashboards/db ({document['uid']})",
                           functools.partial(api.dashboard.update_dashboard, body))
            report.dashboards.append(str(answer.get("url") or document["uid"]) if isinstance(answer, dict)
                                     else document["uid"])
    finally:
        api.client.s.close()
    return report


__all__ = ["DATASOURCE_UID", "GrafanaPushError", "GrafanaUnreachableError", "PushReport", "push"]
