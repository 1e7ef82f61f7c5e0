"""The plant simulator: determinism, event contracts, fault schedule, and the physics of each modality."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from scipy import signal, stats

from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from connectors.sources.simulator.camera import CameraRenderer, Scene, make_scene
from connectors.sources.simulator.config import stagger_offset_ns
from connectors.sources.simulator.logs import NOTICE, SHORTHAND, add_typo
from connectors.sources.simulator.plant import FIRST_MODALITY, FaultPlan, assign_fault_types
from connectors.sources.simulator.vibration import BearingGeometry, VibrationSynth, make_profile
from fusewatch.core.assets import BearingKinematics
from fusewatch.core.codec import InputEvent, decode, decode_pixels, encode
from fusewatch.core.events import CameraFrame, FaultType, MaintenanceLog, VibrationChunk
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_S

FS = 25_600.0
NOON = 12 * NS_PER_HOUR


def digest(events: Iterable[InputEvent]) -> str:
    h = hashlib.sha256()
    for event in events:
        h.update(encode(event))
    return h.hexdigest()


@pytest.fixture(scope="module")
def coarse_run() -> tuple[PlantSimulator, list[list[InputEvent]]]:
    # a coarse plant for whole-run properties: 10-minute steps, 100-sample snapshots, 16x16 frames
    config = SimulatorConfig(
        assets=6,
        days=8.0,
        seed=3,
        sample_rate_hz=2_000.0,
        snapshot_seconds=0.05,
        snapshot_interval_s=600.0,
        frame_interval_s=600.0,
        frame_size=16,
    )
    plant = PlantSimulator(config)
    return plant, list(plant.steps())


# ---------------------------------------------------------------- config and determinism


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("assets", 0),
        ("assets", 2.0),
        ("days", 0.0),
        ("days", float("nan")),
        ("seed", -1),
        ("snapshot_seconds", 120.0),
        ("sample_rate_hz", 100.0),
        ("frame_size", 4),
        ("healthy_fraction", 1.5),
        ("max_fault_days", 1.0),
        ("jpeg_quality", 0),
    ],
)
def test_invalid_config_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        SimulatorConfig(**{field: value})


def test_a_run_shorter_than_one_step_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^days:"):
        SimulatorConfig(days=30.0 / 86_400)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    config = SimulatorConfig(assets=2, days=0.01, seed=11)
    first = digest(PlantSimulator(config).events())
    plant = PlantSimulator(config)
    assert digest(plant.events()) == first
    assert digest(plant.events()) == first  # steps() restarts from scratch
    assert digest(PlantSimulator(SimulatorConfig(assets=2, days=0.01, seed=12)).events()) != first


def test_an_assets_stream_does_not_depend_on_the_other_assets() -> None:
    alone = [e for e in PlantSimulator(SimulatorConfig(assets=1, days=0.01)).events()]
    crowd = [e for e in PlantSimulator(SimulatorConfig(assets=4, days=0.01)).events() if e.asset_id == "pump-01"]
    assert digest(alone) == digest(crowd)


# ---------------------------------------------------------------- events


def test_steps_cover_every_asset_in_time_order() -> None:
    config = SimulatorConfig(assets=3, days=0.02)
    plant = PlantSimulator(config)
    steps = list(plant.steps())
    assert len(steps) == plant.total_steps == 28
    assert plant.asset_ids == ["pump-01", "motor-02", "pump-03"]
    step_ns = 60 * NS_PER_S
    previous = -1
    for k, step in enumerate(steps):
        t0 = config.start_ns + k * step_ns
        stamps = [e.ts for e in step]
        assert stamps == sorted(stamps) and stamps[0] >= previous
        previous = stamps[-1]
        assert all(t0 <= ts < t0 + step_ns for ts in stamps)
        chunks = [e for e in step if isinstance(e, VibrationChunk)]
        frames = [e for e in step if isinstance(e, CameraFrame)]
        assert [c.asset_id for c in chunks] == plant.asset_ids and {c.ts for c in chunks} == {t0}
        assert [f.asset_id for f in frames] == plant.asset_ids and {f.ts for f in frames} == {t0 + 30 * NS_PER_S}
    assert digest(plant.events()) == digest(e for step in steps for e in step)


def test_every_event_round_trips_through_the_codec() -> None:
    plant = PlantSimulator(SimulatorConfig(assets=3, days=4.0, seed=1))
    step = next(plant.steps())
    logs = [entry.to_event(a) for a in plant.asset_ids for entry in plant.log_entries(a)]
    assert logs and any(e.kind is None for e in logs) and any(e.kind is not None for e in logs)
    for event in [*step, *logs]:
        back = decode(encode(event))
        assert encode(back) == encode(event)
    chunk = next(e for e in step if isinstance(e, VibrationChunk))
    assert (chunk.sensor_id, chunk.unit, chunk.samples.size) == ("de", "g", 25_600)
    assert chunk.samples.dtype == np.float32
    frame = next(e for e in step if isinstance(e, CameraFrame))
    assert (frame.camera_id, frame.encoding, frame.data[:3]) == ("cam-1", "jpeg", b"\xff\xd8\xff")
    pixels = decode_pixels(frame)
    assert pixels.shape == (128, 128) and 20 < pixels.mean() < 200 and pixels.std() > 5


def test_kinematics_follow_the_standard_formulas() -> None:
    k = BearingGeometry("6205", 9, 7.94, 39.04, 0.0).kinematics(1.0)  # CWRU drive-end bearing, orders
    assert (k.bpfo_hz, k.bpfi_hz, k.ftf_hz, 2 * k.bsf_hz) == pytest.approx((3.5848, 5.4152, 0.39828, 4.7135), rel=1e-3)
    plant = PlantSimulator(SimulatorConfig(assets=6, days=1.0))
    for asset_id in plant.asset_ids:
        kin = plant.kinematics(asset_id)
        assert isinstance(kin, BearingKinematics) and 24.0 <= kin.shaft_hz <= 30.0
        assert kin.ftf_hz < kin.shaft_hz < kin.bpfo_hz < kin.bpfi_hz
    assert len({plant.kinematics(a).bpfo_hz for a in plant.asset_ids}) == 6
    with pytest.raises(KeyError):
        plant.kinematics("pump-99")


# ---------------------------------------------------------------- fault schedule


def test_ground_truth_is_consistent_across_seeds() -> None:
    for seed in range(12):
        config = SimulatorConfig(seed=seed)
        truths = PlantSimulator(config).ground_truth
        assert [t.asset_id for t in truths] == [f"{k}-{i:02d}" for i, k in enumerate(["pump", "motor"] * 3, 1)]
        faulty = [t for t in truths if t.fault_type]
        assert len(faulty) == 4 and {t.fault_type for t in faulty} == set(FIRST_MODALITY)
        for t in truths:
            if t.fault_type is None:
                assert (t.onset_at, t.failure_at, t.restart_at, t.first_modality) == (None, None, None, None)
                continue
            assert t.onset_at is not None and t.failure_at is not None and t.restart_at is not None
            assert config.start_ns + 2 * NS_PER_DAY <= t.onset_at < t.failure_at < t.restart_at < config.end_ns
            assert 2 * NS_PER_DAY <= t.failure_at - t.onset_at <= 6 * NS_PER_DAY
            assert 4 * NS_PER_HOUR <= t.restart_at - t.failure_at <= 12 * NS_PER_HOUR
            expected = {"leak": "camera", "winding": "logs"}.get(t.fault_type, "vibration")
            assert t.first_modality == expected
            assert (t.fault_type == "leak") <= (t.asset_kind == "pump") and (t.fault_type == "winding") <= (
                t.asset_kind == "motor"
            )


def test_short_runs_scale_the_schedule_or_have_no_faults() -> None:
    assert assign_fault_types(SimulatorConfig(days=2.9)) == [None] * 6
    config = SimulatorConfig(days=4.0, seed=5)
    faulty = [t for t in PlantSimulator(config).ground_truth if t.fault_type]
    assert faulty
    for t in faulty:
        assert t.onset_at and t.failure_at and t.restart_at
        assert config.start_ns + 2 * NS_PER_DAY <= t.onset_at < t.failure_at < t.restart_at < config.end_ns


def test_latest_onset_puts_every_fault_in_the_machines_first_day_and_changes_nothing_else() -> None:
    early = SimulatorConfig(assets=8, days=5.0, seed=3, fault_free_days=2 / 24, latest_onset_days=1.0)
    anywhere = SimulatorConfig(assets=8, days=5.0, seed=3, fault_free_days=2 / 24)
    early_truth = {t.asset_id: t for t in PlantSimulator(early).ground_truth}
    anywhere_truth = {t.asset_id: t for t in PlantSimulator(anywhere).ground_truth}
    faulty = [t for t in early_truth.values() if t.fault_type]
    assert len(faulty) >= 4
    for t in faulty:
        assert t.onset_at is not None and t.failure_at is not None
        assert early.start_ns + 2 * NS_PER_HOUR <= t.onset_at <= early.start_ns + NS_PER_DAY
        other = anywhere_truth[t.asset_id]  # same fault type and duration: only the onset's span shrank
        assert other.onset_at is not None and other.failure_at is not None
        assert (other.fault_type, other.failure_at - other.onset_at) == (t.fault_type, t.failure_at - t.onset_at)
    assert any(t.onset_at > early.start_ns + NS_PER_DAY for t in anywhere_truth.values() if t.onset_at)
    with pytest.raises(ValueError, match=r"^latest_onset_days:"):
        SimulatorConfig(fault_free_days=2.0, latest_onset_days=1.0)


def test_severity_grows_as_a_power_of_time() -> None:
    plan = FaultPlan("leak", "seal", onset_ns=0, failure_ns=100, restart_ns=150, exponent=2.0)
    assert [plan.severity(t) for t in (-1, 0, 50, 90, 100, 120, 160)] == pytest.approx([0, 0, 0.25, 0.81, 0, 0, 0])
    assert plan.time_at(0.25) == 50 and plan.is_down(100) and not plan.is_down(150)


def test_a_failed_asset_is_silent_until_restart_then_healthy(coarse_run) -> None:
    plant, steps = coarse_run
    events = [e for step in steps for e in step]
    for truth in plant.ground_truth:
        mine = [e for e in events if e.asset_id == truth.asset_id]
        signals = [e.ts for e in mine if not isinstance(e, MaintenanceLog)]
        if truth.failure_at is None:
            assert len(signals) == 2 * plant.total_steps
            continue
        assert truth.restart_at is not None
        assert not [ts for ts in signals if truth.failure_at <= ts < truth.restart_at]
        assert max(ts for ts in signals if ts < truth.failure_at) > truth.failure_at - 600 * NS_PER_S
        logs = {e.ts: e.text for e in mine if isinstance(e, MaintenanceLog)}
        assert truth.failure_at in logs and truth.restart_at in logs
        assert plant.severity(truth.asset_id, truth.restart_at + NS_PER_HOUR) == 0.0


# ---------------------------------------------------------------- vibration


def synth(seed: int = 4, kind: str = "pump") -> VibrationSynth:
    profile = make_profile(np.random.default_rng([seed, 0, 1]), kind, FS)
    return VibrationSynth(profile, FS, int(FS), np.random.default_rng([seed, 0, 3]))


def kurtosis(s: VibrationSynth, severity: float, fault: FaultType | None, n: int = 4) -> float:
    point = s.profile.operating_points[-1]
    return float(np.mean([stats.kurtosis(s.snapshot(point, severity, fault), fisher=False) for _ in range(n)]))


@pytest.mark.parametrize("fault", ["bearing_outer", "bearing_inner"])
def test_a_bearing_fault_is_buried_at_onset_and_plain_near_failure(fault: FaultType) -> None:
    s = synth()
    healthy = kurtosis(s, 0.0, None)
    assert 2.7 < healthy < 3.3
    early = 0.1**2  # 10 % of the way from onset to failure
    assert s.profile.fault_peak * early * 1.1 < 0.3 * s.profile.noise_rms  # impact peak far below the noise RMS
    assert abs(kurtosis(s, early, fault) - healthy) < 0.15
    assert kurtosis(s, 0.95, fault) > 5.0


def envelope_peak(x: np.ndarray, resonance_hz: float) -> tuple[float, np.ndarray, np.ndarray]:
    sos = signal.butter(4, [0.6 * resonance_hz, min(1.4 * resonance_hz, 12_000.0)], "bandpass", fs=FS, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    freqs = np.fft.rfftfreq(x.size, 1.0 / FS)
    band = (freqs > 5.0) & (freqs < 500.0)
    return float(freqs[band][np.argmax(spectrum[band])]), freqs[band], spectrum[band]


@pytest.mark.parametrize(("fault", "line"), [("bearing_outer", "bpfo_hz"), ("bearing_inner", "bpfi_hz")])
def test_the_envelope_spectrum_shows_the_fault_frequency_near_failure(fault: FaultType, line: str) -> None:
    s = synth(seed=8, kind="motor")
    point = s.profile.operating_points[-1]
    target = getattr(s.profile.kinematics, line)  # nominal speed: the operating point shifts it by < 1.5 %
    peak, freqs, spectrum = envelope_peak(s.snapshot(point, 0.9, fault), s.profile.resonance_hz)
    _, _, healthy = envelope_peak(s.snapshot(point), s.profile.resonance_hz)
    near = np.abs(freqs - target) < 0.03 * target
    assert spectrum[near].max() > 10 * np.median(spectrum) and healthy[near].max() < 5 * np.median(healthy)
    order = round(peak / target)  # the strongest envelope line is the fault frequency or one of its harmonics
    assert 1 <= order <= 3 and peak == pytest.approx(order * target, rel=0.03)


def test_load_changes_speed_amplitude_and_noise() -> None:
    s = synth(seed=2)
    low, high = s.profile.operating_points[0], s.profile.operating_points[-1]
    assert low.load < high.load and low.noise_factor < high.noise_factor and low.amp_factor < high.amp_factor
    assert 0.97 < low.speed_factor < 1.03 and low.speed_factor != high.speed_factor
    assert np.std(s.snapshot(low)) < np.std(s.snapshot(high))


def test_leak_and_early_winding_leave_vibration_untouched() -> None:
    point = synth(kind="motor").profile.operating_points[0]
    healthy = synth(kind="motor").snapshot(point)
    assert np.array_equal(synth(kind="motor").snapshot(point, 1.0, "leak"), healthy)
    assert np.array_equal(synth(kind="motor").snapshot(point, 0.5, "winding"), healthy)
    hum = synth(kind="motor").snapshot(point, 1.0, "winding")
    assert not np.array_equal(hum, healthy) and abs(stats.kurtosis(hum, fisher=False) - 3.0) < 0.5


# ---------------------------------------------------------------- camera


def render(
    kind: str, severity: float, fault: FaultType | None, ts: int = NOON, seed: int = 6
) -> tuple[np.ndarray, Scene]:
    scene = make_scene(np.random.default_rng([seed, 5]), kind, 128)
    renderer = CameraRenderer(scene, np.random.default_rng([seed, 7]), occlusion_probability=0.0)
    return renderer.pixels(ts, severity, fault).astype(np.float64), scene


def test_the_leak_stain_spreads_and_darkens_below_the_seal() -> None:
    means = []
    for severity in (0.0, 0.05, 0.3, 1.0):
        pixels, scene = render("pump", severity, "leak")
        means.append(pixels[scene.seal_region].mean())
    assert means[0] > means[1] > means[2] > means[3] and means[0] - means[3] > 15
    clean, _ = render("pump", 0.0, None)
    stained, _ = render("pump", 1.0, "leak")
    assert np.array_equal(clean[:40], stained[:40])  # nothing changes above the machine


def test_a_winding_heat_spot_appears_only_at_late_severity() -> None:
    clean, scene = render("motor", 0.0, None)
    assert np.array_equal(render("motor", 0.4, "winding")[0], clean)
    hot, _ = render("motor", 0.9, "winding")
    assert scene.heat is not None
    spot = scene.heat > 0.5
    assert (hot - clean)[spot].mean() > 25 and np.abs(hot - clean)[~spot].mean() < 3


def test_bearing_faults_are_invisible_to_the_camera() -> None:
    assert np.array_equal(render("pump", 1.0, "bearing_outer")[0], render("pump", 0.0, None)[0])


def test_lighting_follows_the_day_and_occlusions_are_rare() -> None:
    day, _ = render("pump", 0.0, None, ts=NOON)
    night, _ = render("pump", 0.0, None, ts=2 * NS_PER_HOUR)
    assert day.mean() > 1.3 * night.mean()
    scene = make_scene(np.random.default_rng(1), "pump", 32)
    renderer = CameraRenderer(scene, np.random.default_rng(2), occlusion_probability=0.003)
    stack = np.stack([renderer.pixels(NOON) for _ in range(3000)]).reshape(3000, -1).astype(np.float64)
    reference = np.median(stack, axis=0)
    correlation = np.array([np.corrcoef(frame, reference)[0, 1] for frame in stack])
    occluded = int((correlation < 0.9).sum())
    assert 1 <= occluded <= 30 and np.median(correlation) > 0.97


# ---------------------------------------------------------------- logs


def test_logs_read_like_technicians_wrote_them() -> None:
    plant = PlantSimulator(SimulatorConfig(seed=0))
    entries = [e for a in plant.asset_ids for e in plant.log_entries(a)]
    words = {w.strip(".,:;!?()").lower() for e in entries for w in e.text.split()}
    assert len({s.lower() for s in SHORTHAND} & words) >= 8
    assert sum(e.typo for e in entries) >= 5
    assert any(re.search(r"\bP-0\d\b", e.text) for e in entries) and any("pump " in e.text for e in entries)
    unlabeled = sum(not e.labelled for e in entries) / len(entries)
    assert 0.1 < unlabeled < 0.3
    assert len({e.author for e in entries}) >= 5
    rng = np.random.default_rng(0)
    assert add_typo(rng, "bearing noisy") != "bearing noisy" and add_typo(rng, "P-03 ok") == "P-03 ok"


def test_symptom_notes_appear_only_once_a_human_would_notice() -> None:
    relative_first: dict[str, list[float]] = {}
    for seed in range(6):
        plant = PlantSimulator(SimulatorConfig(seed=seed))
        for truth in plant.ground_truth:
            entries = plant.log_entries(truth.asset_id)
            kinds = [e.kind for e in entries]
            if truth.fault_type is None:
                assert "symptom" not in kinds and "failure" not in kinds and "repair" not in kinds
                continue
            plan = plant.fault_plan(truth.asset_id)
            assert plan is not None
            symptoms = [e for e in entries if e.kind == "symptom"]
            assert symptoms and all(plan.time_at(NOTICE[plan.fault_type]) <= e.ts < plan.failure_ns for e in symptoms)
            assert all(e.kind in ("inspection", "note") for e in entries if e.ts < plan.onset_ns)
            assert [e.ts for e in entries if e.kind == "failure"] == [plan.failure_ns]
            assert [e.ts for e in entries if e.kind == "repair"] == [plan.restart_ns]
            span = plan.failure_ns - plan.onset_ns
            relative_first.setdefault(plan.fault_type, []).append((symptoms[0].ts - plan.onset_ns) / span)
    # winding: logs first (smell at severity 0.15); bearings: heard only above 0.6; leak: oil seen above 0.4
    bearings = relative_first["bearing_outer"] + relative_first["bearing_inner"]
    assert max(relative_first["winding"]) < 0.6 < math.sqrt(0.4) <= min(relative_first["leak"])
    assert math.sqrt(0.6) <= min(bearings)


# ---------------------------------------------------------------- staggered sampling phases


def _stagger_plant(stagger_s: float) -> PlantSimulator:
    return PlantSimulator(SimulatorConfig(assets=8, days=4 / 1440, seed=5, sample_rate_hz=2_000.0,
                                          snapshot_seconds=0.05, frame_size=16, stagger_s=stagger_s))


def test_stagger_offsets_are_deterministic_per_asset_and_within_the_range() -> None:
    ids = [f"pump-{n:02d}" for n in range(1, 200)]
    offsets = [stagger_offset_ns(asset_id, 30.0) for asset_id in ids]
    assert offsets == [stagger_offset_ns(asset_id, 30.0) for asset_id in ids]
    assert all(0 <= offset < 30 * NS_PER_S and offset % 1_000_000 == 0 for offset in offsets)
    assert len(set(offsets)) > 150  # spread, not a handful of phases
    assert max(offsets) - min(offsets) > 25 * NS_PER_S
    assert all(stagger_offset_ns(asset_id, 0.0) == 0 for asset_id in ids)


def test_the_default_is_no_stagger_and_byte_identical() -> None:
    assert SimulatorConfig().stagger_s == 0.0
    unstaggered = _stagger_plant(0.0)
    assert digest(unstaggered.events()) == digest(PlantSimulator(unstaggered.config).events())
    for step_index, step in enumerate(unstaggered.steps()):
        t0 = unstaggered.config.start_ns + step_index * unstaggered.config.step_ns
        assert {e.ts for e in step if isinstance(e, VibrationChunk)} == {t0}
        assert {e.ts for e in step if isinstance(e, CameraFrame)} == {t0 + 30 * NS_PER_S}


def test_staggered_events_shift_by_the_assets_offset_stay_in_their_step_and_sorted() -> None:
    plain, staggered = _stagger_plant(0.0), _stagger_plant(30.0)
    config = staggered.config
    for step_index, (before, after) in enumerate(zip(plain.steps(), staggered.steps(), strict=True)):
        t0 = config.start_ns + step_index * config.step_ns
        assert [e.ts for e in after] == sorted(e.ts for e in after)
        assert all(t0 <= e.ts < t0 + config.step_ns for e in after)
        key = lambda e: (e.asset_id, type(e).__name__, e.ts)  # noqa: E731
        for old, new in zip(sorted(before, key=key), sorted(after, key=key), strict=True):
            shift = 0 if isinstance(old, MaintenanceLog) else stagger_offset_ns(old.asset_id, 30.0)
            assert new.ts == old.ts + shift
            assert encode(new.model_copy(update={"ts": old.ts})) == encode(old)  # the same data, later
    phases = {e.ts - config.start_ns for e in next(staggered.steps()) if isinstance(e, VibrationChunk)}
    assert len(phases) == config.assets  # no longer all at the same instant


@pytest.mark.parametrize(("changes", "match"), [({"stagger_s": -1.0}, r"^stagger_s:"),
                                                 ({"stagger_s": 31.0}, r"^stagger_s:"),
                                                 ({"stagger_s": 10.0, "frame_interval_s": 120.0}, r"^stagger_s:")])
def test_invalid_stagger_is_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulatorConfig(**changes)
