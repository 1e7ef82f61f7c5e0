"""The alert policy: a per-asset state machine over fused scores.

- **open** when at least ``open_k`` of the last ``open_n`` scored windows reach ``open_threshold``;
- **escalate** (warning → critical) when ``escalate_k`` of the last ``open_n`` reach ``escalate_threshold``;
- **close** with hysteresis, after ``close_windows`` consecutive windows below ``close_threshold``;
- **cooldown**: no new alert for ``cooldown_s`` after a close (no flapping);
- **dedup**: while an alert is open, further high windows raise nothing new;
- **maintenance windows** suppress opening (the transition is reported as ``suppressed`` once);
- **acknowledge**: an operator's acknowledgement is recorded as a transition and stops escalation;
- **resolve**: a repair closes the open alert (the cooldown then starts): :meth:`AlertPolicy.close_on_repair` is the
  rule every runner and the method replay of the evaluation apply to a window's new log entries;
- warm-up windows never count towards opening.

Alert ids are deterministic (asset, opening window end, run id), so replays overwrite rather than duplicate.

>>> from fusewatch.core.events import Score
>>> policy = AlertPolicy(AlertPolicyConfig(open_k=2, open_n=3, escalate_k=3, close_windows=2), run_id="demo")
>>> def score(end, fused):
...     return Score(asset_id="pump-01", window_start=end - 60, window_end=end, fused=fused, calibrated={},
...                  raw={}, contributions={}, present={}, leading=None, top_features=[], warmup=False,
...                  model_version="v", run_id="demo")
>>> [a.transition for end, f in [(60, .999), (120, .999), (180, .2), (240, .2)] for a in policy.update(score(end, f))]
['opened', 'closed']
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fusewatch.core.events import Alert, Score
from fusewatch.core.timeutil import NS_PER_S

Severity = Literal["warning", "critical"]
ASSET_DASHBOARD = "fusewatch-asset"  # the uid of the asset drill-down dashboard (connectors/grafana)


class AlertPolicyConfig(BaseModel):
    """Thresholds and timings of the alert state machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open_threshold: float = Field(0.45, ge=0, le=1, description="a window counts towards opening at this score")
    open_k: int = Field(3, ge=1, description="open after this many high windows ...")
    open_n: int = Field(5, ge=1, description="... among the last open_n windows")
    escalate_threshold: float = Field(0.8, ge=0, le=1, description="a window counts towards escalation")
    escalate_k: int = Field(4, ge=1, description="escalate to critical after this many of the last open_n")
    close_threshold: float = Field(0.25, ge=0, le=1, description="a window counts towards closing below this")
    close_windows: int = Field(60, ge=1, description="close after this many consecutive low windows")
    cooldown_s: float = Field(6 * 3600.0, ge=0, description="no new alert this long after a close")
    grafana_url: str = Field("", description="Grafana's base URL: alerts then link to the asset's dashboard")
    link_before_s: float = Field(24 * 3600.0, ge=0, description="the link's time range starts this long before"
                                 " the opening")
    link_after_s: float = Field(3600.0, ge=0, description="... and ends this long after the transition")

    @field_validator("grafana_url")
    @classmethod
    def _check_grafana_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://grafana.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_consistency(self) -> AlertPolicyConfig:
        if self.open_k > self.open_n:
            raise ValueError("open_k must not exceed open_n")
        if self.escalate_k > self.open_n:
            raise ValueError("escalate_k must not exceed open_n")
        if self.close_threshold > self.open_threshold:
            raise ValueError("close_threshold must not exceed open_threshold")
        return self


@dataclass
class _AssetAlertState:
    recent: deque[float]
    open_alert: Alert | None = None
    acknowledged: bool = False
    below: int = 0
    cooldown_until: int = -(2**62)
    suppressed_reported: bool = False
    maintenance: list[tuple[int, int]] = field(default_factory=list)


class AlertPolicy:
    """Per-asset alert state machines; ``update`` takes each score in window order per asset."""

    def __init__(self, config: AlertPolicyConfig | None = None, run_id: str = "live") -> None:
        self.config = config or AlertPolicyConfig()
        self.run_id = run_id
        self._assets: dict[str, _AssetAlertState] = {}

    def _state(self, asset_id: str) -> _AssetAlertState:
        state = self._assets.get(asset_id)
        if state is None:
            state = self._assets[asset_id] = _AssetAlertState(recent=deque(maxlen=self.config.open_n))
        return state

    def is_alerting(self, asset_id: str) -> bool:
        """True while the asset has an open alert (the pipeline stops learning it as normal then)."""
        state = self._assets.get(asset_id)
        return state is not None and state.open_alert is not None

    def add_maintenance_window(self, asset_id: str, start_ns: int, end_ns: int) -> None:
        """Suppress new alerts for ``asset_id`` between ``start_ns`` and ``end_ns`` (planned work)."""
        windows = self._state(asset_id).maintenance
        if (start_ns, end_ns) not in windows:  # a replayed instruction adds nothing
            windows.append((start_ns, end_ns))

    def acknowledge(self, asset_id: str, ts_ns: int) -> Alert | None:
        """Record an operator's acknowledgement of the open alert; returns the transition or None."""
        state = self._state(asset_id)
        if state.open_alert is None or state.acknowledged:
            return None
        state.acknowledged = True
        return self._transition(state.open_alert, "acknowledged", ts_ns, state.open_alert.fused)

    def resolve(self, asset_id: str, ts_ns: int) -> Alert | None:
        """Close the open alert because the asset was repaired (a ``repair`` entry in its log)."""
        state = self._assets.get(asset_id)
        if state is None or state.open_alert is None:
            return None
        alert = state.open_alert
        state.open_alert = None
        state.recent.clear()
        state.cooldown_until = ts_ns + int(self.config.cooldown_s * NS_PER_S)
        return self._transition(alert, "closed", ts_ns, alert.fused)

    def close_on_repair(self, asset_id: str, ts_ns: int, kinds: Iterable[str]) -> Alert | None:
        """A repair closes the alert: resolve the open alert at ``ts_ns`` when one of ``kinds`` (the effective
        kinds of the log entries a window brought) is ``repair``; returns the ``closed`` transition or None.

        >>> AlertPolicy(run_id="demo").close_on_repair("pump-01", 60, ["note", "repair"]) is None  # none open
        True
        """
        return self.resolve(asset_id, ts_ns) if any(kind == "repair" for kind in kinds) else None

    def update(self, score: Score) -> list[Alert]:
        """Feed one score; return the alert transitions it causes (usually none)."""
        config = self.config
        state = self._state(score.asset_id)
        if score.warmup:
            return []
        state.recent.append(score.fused)
        ts = score.window_end
        if state.maintenance and min(end for _, end in state.maintenance) <= ts:
            state.maintenance = [window for window in state.maintenance if window[1] > ts]  # past windows go
        if state.open_alert is not None:
            return self._update_open(state, score)
        if sum(value >= config.open_threshold for value in state.recent) < config.open_k or ts < state.cooldown_until:
            return []
        if any(start <= ts < end for start, end in state.maintenance):
            if state.suppressed_reported:
                return []
            state.suppressed_reported = True
            return [self._new_alert(score, "suppressed")]
        state.suppressed_reported = False
        severity: Severity = "critical" if self._escalating(state) else "warning"
        alert = self._new_alert(score, "opened", severity)
        state.open_alert, state.acknowledged, state.below = alert, False, 0
        return [alert]

    def _update_open(self, state: _AssetAlertState, score: Score) -> list[Alert]:
        config = self.config
        alert = state.open_alert
        assert alert is not None
        state.below = state.below + 1 if score.fused < config.close_threshold else 0
        if state.below >= config.close_windows:
            closed = self.resolve(score.asset_id, score.window_end)
            return [closed] if closed is not None else []
        if alert.severity == "warning" and not state.acknowledged and self._escalating(state):
            escalated = self._transition(alert, "escalated", score.window_end, score.fused, "critical")
            state.open_alert = escalated
            return [escalated]
        return []

    def _escalating(self, state: _AssetAlertState) -> bool:
        return sum(value >= self.config.escalate_threshold for value in state.recent) >= self.config.escalate_k

    def grafana_link(self, asset_id: str, opened_at_ns: int, ts_ns: int) -> str | None:
        """The asset's Grafana dashboard (docs/grafana.md) around the alert, when ``grafana_url`` is set.

        >>> policy = AlertPolicy(AlertPolicyConfig(grafana_url="https://grafana.example.com/"), run_id="live")
        >>> policy.grafana_link("pump-01", 90_000_000_000_000, 90_000_000_000_000)
        'https://grafana.example.com/d/fusewatch-asset/fusewatch-asset?var-asset=pump-01&var-run_id=live&from=3600000&to=93600000'
        """
        config = self.config
        if not config.grafana_url:
            return None
        query = urllib.parse.urlencode({
            "var-asset": asset_id, "var-run_id": self.run_id,
            "from": max(0, (opened_at_ns - int(config.link_before_s * NS_PER_S)) // 1_000_000),
            "to": (ts_ns + int(config.link_after_s * NS_PER_S)) // 1_000_000,
        })
        return f"{config.grafana_url}/d/{ASSET_DASHBOARD}/{ASSET_DASHBOARD}?{query}"

    def _new_alert(self, score: Score, transition: str, severity: Severity = "warning") -> Alert:
        digest = hashlib.sha1(f"{score.asset_id}|{score.window_end}|{self.run_id}".encode()).hexdigest()[:16]
        return Alert(
            alert_id=digest,
            asset_id=score.asset_id,
            ts=score.window_end,
            transition=transition,  # type: ignore[arg-type]
            severity=severity,
            fused=score.fused,
            contributions=score.contributions,
            leading=score.leading,
            top_features=score.top_features,
            opened_at=score.window_end,
            run_id=self.run_id,
            grafana_url=self.grafana_link(score.asset_id, score.window_end, score.window_end),
        )

    def _transition(
        self, alert: Alert, transition: str, ts_ns: int, fused: float, severity: Severity | None = None
    ) -> Alert:
        return alert.model_copy(update={
            "transition": transition, "ts": ts_ns, "fused": fused, "severity": severity or alert.severity,
            "grafana_url": self.grafana_link(alert.asset_id, alert.opened_at, ts_ns),
        })
