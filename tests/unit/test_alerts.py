"""The alert state machine: k of n, escalation, hysteresis, cooldown, dedup, maintenance, acknowledge."""

from __future__ import annotations

import pytest

from fusewatch.core.events import Alert, Score
from fusewatch.core.timeutil import NS_PER_HOUR, NS_PER_MIN
from streams.alerts import AlertPolicy, AlertPolicyConfig

CONFIG = AlertPolicyConfig(
    open_threshold=0.99, open_k=3, open_n=5, escalate_threshold=0.9999, escalate_k=4, close_threshold=0.9,
    close_windows=3, cooldown_s=3600,
)


def score(minute: int, fused: float, asset: str = "pump-01", warmup: bool = False) -> Score:
    end = (minute + 1) * NS_PER_MIN
    return Score(asset_id=asset, window_start=end - NS_PER_MIN, window_end=end, fused=fused, calibrated={},
                 raw={}, contributions={"vibration": fused}, present={"vibration": True}, leading="vibration",
                 top_features=[("env_bpfo", 4.2)], warmup=warmup, model_version="v", run_id="test")


def run(policy: AlertPolicy, values: list[float], start: int = 0, asset: str = "pump-01") -> list[tuple[int, Alert]]:
    out: list[tuple[int, Alert]] = []
    for i, value in enumerate(values):
        out.extend((start + i, alert) for alert in policy.update(score(start + i, value, asset)))
    return out


def transitions(events: list[tuple[int, Alert]]) -> list[tuple[int, str]]:
    return [(minute, alert.transition) for minute, alert in events]


def test_opens_after_k_of_n_high_windows_only() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    assert run(policy, [0.995, 0.2, 0.995, 0.2, 0.2, 0.995, 0.2]) == []  # never 3 in the last 5
    events = run(policy, [0.995, 0.995], start=7)
    assert transitions(events) == [(8, "opened")]
    alert = events[0][1]
    assert alert.severity == "warning" and alert.leading == "vibration" and alert.top_features == [("env_bpfo", 4.2)]
    assert policy.is_alerting("pump-01") and not policy.is_alerting("pump-02")


def test_dedup_escalation_and_hysteresis() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    events = run(policy, [0.995] * 3 + [0.99999] * 4 + [0.95] * 5 + [0.5] * 2 + [0.95] + [0.5] * 3)
    assert transitions(events) == [(2, "opened"), (6, "escalated"), (17, "closed")]
    assert len({alert.alert_id for _, alert in events}) == 1
    assert events[1][1].severity == events[2][1].severity == "critical"


def test_cooldown_blocks_reopening_then_expires() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    events = run(policy, [0.995] * 3 + [0.1] * 3)
    assert transitions(events) == [(2, "opened"), (5, "closed")]
    assert run(policy, [0.995] * 10, start=6) == []  # within the hour of cooldown
    assert transitions(run(policy, [0.995], start=70)) == [(70, "opened")]  # still high after the cooldown


def test_warmup_windows_never_alert() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    assert all(policy.update(score(i, 0.99999, warmup=True)) == [] for i in range(20))


def test_maintenance_window_suppresses_once() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    policy.add_maintenance_window("pump-01", 0, 2 * NS_PER_HOUR)
    assert transitions(run(policy, [0.995] * 10)) == [(2, "suppressed")]
    assert not policy.is_alerting("pump-01")
    assert transitions(run(policy, [0.995], start=200)) == [(200, "opened")]  # still high when the work ends


def test_acknowledge_stops_escalation() -> None:
    policy = AlertPolicy(CONFIG, run_id="test")
    run(policy, [0.995] * 3)
    ack = policy.acknowledge("pump-01", 5 * NS_PER_MIN)
    assert ack is not None and ack.transition == "acknowledged"
    assert policy.acknowledge("pump-01", 6 * NS_PER_MIN) is None
    assert run(policy, [0.99999] * 5, start=3) == []


def test_assets_are_independent_and_ids_deterministic() -> None:
    first, second = AlertPolicy(CONFIG, run_id="test"), AlertPolicy(CONFIG, run_id="test")
    a = run(first, [0.995] * 3, asset="pump-01") + run(first, [0.995] * 3, asset="motor-02")
    b = run(second, [0.995] * 3, asset="pump-01")
    assert [alert.asset_id for _, alert in a] == ["pump-01", "motor-02"]
    assert a[0][1].alert_id == b[0][1].alert_id
    other_run = AlertPolicy(CONFIG, run_id="backtest-1")
    assert run(other_run, [0.995] * 3)[0][1].alert_id != a[0][1].alert_id


def test_inconsistent_config_is_refused() -> None:
    with pytest.raises(ValueError, match="open_k must not exceed open_n"):
        AlertPolicyConfig(open_k=11, open_n=10)
    with pytest.raises(ValueError, match="close_threshold"):
        AlertPolicyConfig(close_threshold=0.999, open_threshold=0.99)


def test_every_transition_links_to_the_asset_dashboard_around_the_alert() -> None:
    import urllib.parse

    config = CONFIG.model_copy(update={"grafana_url": "https://grafana.example.com", "link_before_s": 60.0,
                                       "link_after_s": 600.0})
    policy = AlertPolicy(config, run_id="test")
    events = run(policy, [0.995] * 3 + [0.5] * 3)
    assert transitions(events) == [(2, "opened"), (5, "closed")]
    for minute, alert in events:
        assert alert.grafana_url is not None
        url = urllib.parse.urlsplit(alert.grafana_url)
        assert (url.netloc, url.path) == ("grafana.example.com", "/d/fusewatch-asset/fusewatch-asset")
        query = dict(urllib.parse.parse_qsl(url.query))
        assert (query["var-asset"], query["var-run_id"]) == ("pump-01", "test")
        assert int(query["from"]) == (alert.opened_at - NS_PER_MIN) // 1_000_000  # a minute before the opening
        assert int(query["to"]) == ((minute + 1) * NS_PER_MIN + 10 * NS_PER_MIN) // 1_000_000  # 10 min after
    assert AlertPolicy(CONFIG).grafana_link("pump-01", 0, 0) is None  # no Grafana configured: no link
    with pytest.raises(ValueError, match="http"):
        AlertPolicyConfig(grafana_url="grafana.example.com")
