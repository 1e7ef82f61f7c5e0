"""Scores, vibration features and alerts as InfluxDB line protocol (docs/influxdb.md).

Points are deterministic: measurement, tags ``asset_id``, ``run_id``, ``model_version`` and the timestamp (window
end, nanoseconds) identify a window, so writing a replayed range again overwrites the same points instead of
adding new ones.

>>> from fusewatch.core.events import Score
>>> score = Score(asset_id="pump-01", window_start=0, window_end=60_000_000_000, fused=0.25,
...               calibrated={"vibration": 0.9}, raw={"vibration": 4.5}, contributions={"vibration": 0.25},
...               present={"vibration": True, "camera": False, "logs": False}, leading="vibration",
...               top_features=[("env_bpfo", 3.2)], warmup=False, model_version="0.1.0+fisher.s2", run_id="live")
>>> for part in score_line(score).split(","):
...     print(part)
fusewatch_score
asset_id=pump-01
model_version=0.1.0+fisher.s2
run_id=live fused=0.25
warmup=false
leading="vibration"
calibrated_vibration=0.9
raw_vibration=4.5
contribution_vibration=0.25
present_vibration=true
present_camera=false
present_logs=false 60000000000
>>> print(escape_tag("pump 1,a=b"))
pump\\ 1\\,a\\=b
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from fusewatch.core.events import Alert, DeadLetter, MaintenanceLog, Score
from models.text import effective_kind

SCORES = "fusewatch_score"
FEATURES = "fusewatch_features"
ALERTS = "fusewatch_alert"
LOGS = "fusewatch_log"
PIPELINE = "fusewatch_pipeline"


def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, equals signs and spaces)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field(value: float | int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0.0"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | int | bool | str], ts_ns: int) -> str:
    """One line of line protocol (tags sorted by key, as InfluxDB recommends)."""
    tag_text = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    field_text = ",".join(f"{escape_tag(k)}={_field(v)}" for k, v in fields.items())
    return f"{escape_tag(measurement)}{tag_text} {field_text} {ts_ns}"


def _identity(score: Score) -> dict[str, str]:
    return {"asset_id": score.asset_id, "run_id": score.run_id, "model_version": score.model_version}


def score_line(score: Score) -> str:
    """The fused score with per-modality calibrated and raw scores, contributions and presence."""
    fields: dict[str, float | int | bool | str] = {"fused": float(score.fused), "warmup": score.warmup}
    if score.leading:
        fields["leading"] = score.leading
    for name, values in (("calibrated", score.calibrated), ("raw", score.raw), ("contribution", score.contributions)):
        for modality, value in values.items():
            fields[f"{name}_{modality}"] = float(value)
    for modality, present in score.present.items():
        fields[f"present_{modality}"] = bool(present)
    return line(SCORES, _identity(score), fields, score.window_end)


def features_line(score: Score) -> str | None:
    """The vibration features of the window (``None`` when it had none)."""
    if not score.features:
        return None
    return line(FEATURES, _identity(score), {k: float(v) for k, v in score.features.items()}, score.window_end)


def alert_line(alert: Alert) -> str:
    """An alert transition, for Grafana annotations: tags asset, run, transition; text fields to show."""
    fields: dict[str, float | int | bool | str] = {
        "fused": float(alert.fused), "severity": alert.severity, "alert_id": alert.alert_id,
        "leading": alert.leading or "", "opened_at": alert.opened_at,
        "text": f"{alert.transition} ({alert.severity}): fused {alert.fused:.2f}, led by {alert.leading or '-'}"
        + "".join(f"; {name} {value:g}" for name, value in alert.top_features[:3]),
    }
    tags = {"asset_id": alert.asset_id, "run_id": alert.run_id, "transition": alert.transition}
    return line(ALERTS, tags, fields, alert.ts)


def log_line(entry: MaintenanceLog) -> str:
    """A maintenance-log entry, for annotations: tags asset and kind (the operator's action, or the kind given
    or inferred), its text and author."""
    fields: dict[str, float | int | bool | str] = {"text": entry.text}
    if entry.author:
        fields["author"] = entry.author
    tags = {"asset_id": entry.asset_id, "kind": entry.action or effective_kind(entry.text, entry.kind)}
    return line(LOGS, tags, fields, entry.ts)


def record_lines(record: Score | Alert | DeadLetter | MaintenanceLog) -> list[str]:
    """The points of one record: a score's with its features', an alert transition's, a log entry's; a dead
    letter has none (the sink agent counts dead letters in its health points)."""
    if isinstance(record, Score):
        features = features_line(record)
        return [score_line(record)] if features is None else [score_line(record), features]
    if isinstance(record, Alert):
        return [alert_line(record)]
    if isinstance(record, MaintenanceLog):
        return [log_line(record)]
    return []


@dataclass(frozen=True)
class PipelineHealth:
    """What the sink saw over one reporting interval (``interval_s`` of wall time ending at ``ts_ns``).

    ``worker_lag``: input messages the workers' consumer group has not committed yet (-1 when unknown);
    ``sink_lag``: output messages the sink has not committed yet; ``pending_webhooks``: deliveries due.
    From the workers' latest reports (topic ``worker-health``): ``*_lag_s``, per modality the most any asset's
    stream is behind that asset's newest event (seconds of event time, -1 when no worker reported);
    ``workers``: how many reported; ``held_bytes``: bytes their event-time merges hold; ``paused_inputs``:
    input topic-partitions they paused.
    """

    interval_s: float
    scores: int
    alerts: int
    dead_letters: int
    points: int
    write_ms: float
    worker_lag: int
    sink_lag: int
    pending_webhooks: int
    vibration_lag_s: float = -1.0
    camera_lag_s: float = -1.0
    logs_lag_s: float = -1.0
    workers: int = 0
    held_bytes: int = 0
    paused_inputs: int = 0

    @property
    def scores_per_s(self) -> float:
        return self.scores / self.interval_s if self.interval_s > 0 else 0.0


def health_line(health: PipelineHealth, group: str, ts_ns: int) -> str:
    """One ``fusewatch_pipeline`` point (tag ``group``: the sink's consumer group; wall-clock time).

    >>> health = PipelineHealth(10.0, 120, 1, 0, 240, 3.5, 0, 7, 0)
    >>> for part in health_line(health, "fusewatch-sink", 1_000).split(","):
    ...     print(part)
    fusewatch_pipeline
    group=fusewatch-sink interval_s=10.0
    scores=120i
    alerts=1i
    dead_letters=0i
    points=240i
    write_ms=3.5
    worker_lag=0i
    sink_lag=7i
    pending_webhooks=0i
    vibration_lag_s=-1.0
    camera_lag_s=-1.0
    logs_lag_s=-1.0
    workers=0i
    held_bytes=0i
    paused_inputs=0i
    scores_per_s=12.0 1000
    """
    fields: dict[str, float | int | bool | str] = dict(asdict(health))
    fields["scores_per_s"] = health.scores_per_s
    return line(PIPELINE, {"group": group}, fields, ts_ns)
