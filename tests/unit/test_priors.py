"""Kind priors: fitted from the fleet's first days, stored in a bundle without pickle, and used by a new asset so that
it can alert after a warm-up of hours, not days; trained by ``fusewatch train`` from a recording."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from connectors.sources.recording import RecordingWriter
from connectors.sources.simulator import PlantSimulator, SimulatorConfig
from fusewatch.cli import main
from fusewatch.core.assets import AssetInfo, AssetRegistry
from fusewatch.core.codec import encode
from fusewatch.core.errors import BundleError
from fusewatch.core.history import RecordedMessage, TopicKind
from fusewatch.core.timeutil import NS_PER_HOUR
from fusewatch.core.topics import Topics
from fusewatch.training import TrainingInput, train_camera_models
from models.bundle import ANY_KIND, load_bundle, write_bundle
from models.camera import CameraDetector
from models.priors import PRIORS_FILE, QUANTILES_FILE, AssetHistory, FleetPriors, fit_priors
from streams.model_config import ModelConfig
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput
from streams.settings import StreamSettings
from streams.stages.camera import ADAPT_STEPS, CAMERA_MODELS_FILE, CameraStage

TOPICS = Topics()
CHANNELS = ("vibration", "camera", "early")


def synthetic_histories(rng: np.random.Generator) -> list[AssetHistory]:
    """Four pumps and two motors, a window a minute for two days; cameras differ in scale (their scenes)."""
    histories = []
    for index in range(6):
        kind, scale = ("pump" if index < 4 else "motor"), 1.0 + index
        ages = np.arange(2880) / 60.0
        values = {"vibration": list(zip(ages, rng.chisquare(3, 2880), strict=True)),
                  "camera": list(zip(ages, scale * rng.lognormal(0.0, 0.2, 2880), strict=True)),
                  "early": list(zip(ages, rng.chisquare(4, 2880), strict=True))}
        histories.append(AssetHistory(kind, {k: [(float(a), float(v)) for a, v in pairs]
                                             for k, pairs in values.items()}))
    return histories


@pytest.fixture(scope="module")
def priors() -> FleetPriors:
    return fit_priors(synthetic_histories(np.random.default_rng(1)), 2.0, (2.0, 8.0, 24.0), span_hours=48.0)


def test_each_kind_gets_each_channel_in_the_unit_that_transfers(priors: FleetPriors) -> None:
    assert sorted(priors.kinds) == [ANY_KIND, "motor", "pump"]
    pumps = priors.kinds["pump"]
    assert pumps["camera"].unit == "relative" and pumps["vibration"].unit == "absolute"
    assert pumps["camera"].samples == (4 * 360, 4 * 960, 4 * 1440)
    # a pump camera at 3 times its own baseline is far outside the fleet's; at its baseline it is ordinary
    assert pumps["camera"].calibrate(3.0, baseline=1.0, bucket=1) > 0.9999  # type: ignore[operator]
    assert 0.3 < pumps["camera"].calibrate(1.0, baseline=1.0, bucket=1) < 0.7  # type: ignore[operator]
    assert pumps["camera"].calibrate(1.0, baseline=None, bucket=1) is None  # relative needs a baseline
    assert priors.for_kind("fan") is priors.kinds[ANY_KIND] and priors.for_kind(None) is priors.kinds[ANY_KIND]
    assert [priors.bucket(age) for age in (0.5, 2.0, 7.9, 8.0, 100.0)] == [0, 0, 0, 1, 2]


def test_a_sparse_bucket_takes_the_previous_one_and_a_channel_without_data_has_no_prior() -> None:
    ages = [(2.0 + i / 60.0) for i in range(300)] + [30.0 + i / 60.0 for i in range(50)]
    history = AssetHistory("pump", {"vibration": [(a, 1.0 + (i % 7)) for i, a in enumerate(ages)],
                                    "camera": [(1.5, 1.0)] * 20})  # warm-up only
    fitted = fit_priors([history], 2.0, (2.0, 24.0))
    prior = fitted.kinds["pump"]["vibration"]
    assert prior.samples == (300, 50) and np.array_equal(prior.quantiles[0], prior.quantiles[1])
    assert "camera" not in fitted.kinds["pump"]
    with pytest.raises(ValueError, match="start at warmup_hours"):
        fit_priors([history], 2.0, (4.0, 24.0))


def test_priors_read_back_from_a_bundle_exactly(tmp_path: Path, priors: FleetPriors) -> None:
    write_bundle(tmp_path / "b", "p1", priors.parts())
    loaded = FleetPriors.from_bundle(load_bundle(tmp_path / "b"))
    assert loaded is not None and loaded.bucket_hours == priors.bucket_hours and loaded.span_hours == 48.0
    for kind, channels in priors.kinds.items():
        for channel, prior in channels.items():
            again = loaded.kinds[kind][channel]
            assert again.unit == prior.unit and again.samples == prior.samples
            assert np.array_equal(again.quantiles, prior.quantiles)
    write_bundle(tmp_path / "none", "p0", {"other.json": {}})
    assert FleetPriors.from_bundle(load_bundle(tmp_path / "none")) is None


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda meta, arrays: meta.update(format="kind-priors-9"), "format 'kind-priors-9'"),
    (lambda meta, arrays: meta["kinds"]["pump"]["camera"].update(unit="kelvin"), "unit 'kelvin'"),
    (lambda meta, arrays: arrays.update(q0=np.zeros((1, 5))), "is not 3 finite rows"),
    (lambda meta, arrays: arrays.update(q0=np.full((3, 5), np.nan)), "is not 3 finite rows"),
    (lambda meta, arrays: meta.pop("span_hours"), "'span_hours'"),
])
def test_a_malformed_prior_is_a_bundle_error_naming_the_file(tmp_path: Path, priors: FleetPriors, edit,
                                                               problem: str) -> None:
    parts = priors.parts()
    meta, arrays = json.loads(json.dumps(parts[PRIORS_FILE])), dict(parts[QUANTILES_FILE])
    edit(meta, arrays)
    write_bundle(tmp_path / "b", "bad", {PRIORS_FILE: meta, QUANTILES_FILE: arrays})
    with pytest.raises(BundleError, match=f"priors.json: .*{problem}"):
        FleetPriors.from_bundle(load_bundle(tmp_path / "b"))


def small_plant() -> PlantSimulator:
    """Four healthy assets (two pumps, two motors) over six hours, small frames and short snapshots."""
    return PlantSimulator(SimulatorConfig(assets=4, days=0.25, seed=5, fault_free_days=0.24, sample_rate_hz=4_000.0,
                                          frame_size=64, snapshot_seconds=0.5))


def score(plant: PlantSimulator, models: ModelConfig) -> CollectingOutput:
    output = CollectingOutput()
    processor = StreamProcessor(StreamSettings(models=models), output, run_id="p", processing_clock=lambda: 0,
                                assets=plant.asset_registry())
    for offset, event in enumerate(plant.events()):
        processor.handle(encode(event), TOPICS.for_event(event), 0, offset, event.ts)
    processor.flush()
    return output


def first_alertable_hours(output: CollectingOutput) -> dict[str, float | None]:
    first: dict[str, int] = {}
    alertable: dict[str, float | None] = {}
    for scored in output.scored:
        score_ = scored.score
        start = first.setdefault(score_.asset_id, score_.window_start)
        alertable.setdefault(score_.asset_id, None)
        if not score_.warmup and alertable[score_.asset_id] is None:
            alertable[score_.asset_id] = (score_.window_end - start) / NS_PER_HOUR
    return alertable


def test_a_new_asset_with_its_kind_prior_can_alert_after_two_hours_and_without_one_it_cannot(
        tmp_path: Path, priors: FleetPriors) -> None:
    plant = small_plant()
    write_bundle(tmp_path / "b", "p1", priors.parts())
    with_prior = score(plant, ModelConfig(bundle=tmp_path / "b"))
    hours = first_alertable_hours(with_prior)
    assert set(hours) == set(plant.asset_ids)
    assert all(h is not None and 2.0 <= h <= 2.0 + 1 / 60 for h in hours.values()), hours
    late = [s for s in with_prior.scored if not s.score.warmup]
    assert {"vibration", "camera", "early"} <= set(late[-1].fusion_input)  # every covered channel fuses at once
    assert set(late[-1].smoothed) == {"vibration", "camera", "early"}  # the logs' probability is not a learned channel
    without = first_alertable_hours(score(plant, ModelConfig()))
    assert set(without.values()) == {None}  # two days of warm-up: none of the six hours can alert


def test_priors_are_not_in_a_checkpoint_and_a_restored_processor_uses_its_own(
        tmp_path: Path, priors: FleetPriors) -> None:
    write_bundle(tmp_path / "b", "p1", priors.parts())
    plant = small_plant()
    settings = StreamSettings(models=ModelConfig(bundle=tmp_path / "b"))
    events = list(plant.events())
    half = len(events) // 2

    def processor() -> StreamProcessor:
        return StreamProcessor(settings, CollectingOutput(), run_id="p", processing_clock=lambda: 0,
                               assets=plant.asset_registry())

    straight, first = processor(), processor()
    for offset, event in enumerate(events):
        straight.handle(encode(event), TOPICS.for_event(event), 0, offset, event.ts)
        if offset < half:
            first.handle(encode(event), TOPICS.for_event(event), 0, offset, event.ts)
    snapshot = first.snapshot()
    _, pipeline, _, _ = pickle.loads(snapshot)
    assert not hasattr(pipeline, "prior") and not hasattr(pipeline, "assets")
    second = processor()
    second.restore(snapshot)
    for offset, event in enumerate(events[half:], start=half):
        second.handle(encode(event), TOPICS.for_event(event), 0, offset, event.ts)
    straight.flush()
    second.flush()
    tail = {(s.score.asset_id, s.score.window_end): s.score.fused for s in straight.output.scored}  # type: ignore[attr-defined]
    resumed = {(s.score.asset_id, s.score.window_end): s.score.fused for s in second.output.scored}  # type: ignore[attr-defined]
    assert resumed and all(tail[key] == pytest.approx(value, abs=1e-9) for key, value in resumed.items())


def test_train_learns_kind_priors_from_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = small_plant()
    by_kind: dict[TopicKind, list[RecordedMessage]] = {"vibration": [], "frames": [], "maintenance-logs": []}
    for sent in plant.messages():
        queue = by_kind[sent.kind]
        queue.append(RecordedMessage(sent.kind, 0, len(queue), sent.timestamp_ms, sent.key, sent.value))
    writer = RecordingWriter(tmp_path / "rec", {"kind": "test"}, None, None,
                             {(kind, 0): (0, len(queue)) for kind, queue in by_kind.items()})
    for queue in by_kind.values():
        for message in queue:
            writer.add(message)
    writer.finish()
    plant.asset_registry().save(tmp_path / "assets.json")
    assert main(["train", "--source", str(tmp_path / "rec"), "--assets-file", str(tmp_path / "assets.json"),
                 "--out", str(tmp_path / "b"), "--version", "site-1", "--warmup-hours", "3", "--no-progress"]) == 0
    assert "kind priors: * (camera, early, vibration); motor (camera, early, vibration); pump (camera, early," \
           " vibration)" in capsys.readouterr().out
    bundle = load_bundle(tmp_path / "b")
    fitted = FleetPriors.from_bundle(bundle)
    assert fitted is not None and fitted.warmup_hours == 3.0 and fitted.bucket_hours == (3.0, 6.0, 12.0, 24.0)
    assert fitted.kinds["pump"]["vibration"].samples[0] == 2 * 180  # two pumps, hours 3 to 6 of each
    assert bundle.manifest["made_from"]["priors"]["pump"] == ["camera", "early", "vibration"]
    assert main(["train", "--source", str(tmp_path / "rec"), "--out", str(tmp_path / "text-only"),
                 "--version", "t", "--no-priors", "--no-progress"]) == 0
    assert load_bundle(tmp_path / "text-only").names == ["text-model.json"]


def test_camera_models_per_kind_start_a_new_assets_autoencoder(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    scenes = {"pump-01": np.tile(np.linspace(40, 200, 64), (64, 1)), "motor-02": np.tile(np.linspace(200, 40, 64),
                                                                                          (64, 1)).T}
    frames = {asset: [(minute * 60 * 10**9, (scene + rng.normal(0, 4, scene.shape)).astype(np.float32))
                      for minute in range(450)] for asset, scene in scenes.items()}
    read = TrainingInput(frames=frames)
    registry = AssetRegistry({"pump-01": AssetInfo("pump", None), "motor-02": AssetInfo("motor", None)})
    tensors = train_camera_models(read, ModelConfig(), registry)
    assert sorted({name.rpartition("/")[0] for name in tensors}) == ["*"]  # 450 frames a kind: too few of its own
    read.frames["pump-03"] = frames["pump-01"][:400]
    registry.assets["pump-03"] = AssetInfo("pump", None)
    tensors = train_camera_models(read, ModelConfig(), registry)
    assert sorted({name.rpartition("/")[0] for name in tensors}) == ["*", "pump"]
    write_bundle(tmp_path / "b", "c1", {CAMERA_MODELS_FILE: tensors})
    stage = CameraStage(ModelConfig(), load_bundle(tmp_path / "b"))
    pump, fan, fresh = stage.new_state(0, "pump"), stage.new_state(0, "fan"), stage.new_state(0)
    assert isinstance(pump, CameraDetector) and isinstance(fan, CameraDetector) and isinstance(fresh, CameraDetector)
    assert pump.steps == pump.warm_steps - ADAPT_STEPS
    assert all(np.array_equal(value, tensors[f"pump/{name}"]) for name, value in pump.weights().items())
    assert all(np.array_equal(value, tensors[f"*/{name}"]) for name, value in fan.weights().items())
    assert all(np.array_equal(value, tensors[f"*/{name}"]) for name, value in fresh.weights().items())
    # the pump model reconstructs a pump's scene far better than an untrained autoencoder does
    scene = scenes["pump-01"].astype(np.uint8)
    assert pump.score_one(scene) < 0.5 * CameraStage(ModelConfig()).new_state(0, "pump").score_one(scene)
    with pytest.raises(BundleError, match=r"camera.safetensors: \*: weights of another architecture"):
        CameraStage(ModelConfig(camera_depth=3), load_bundle(tmp_path / "b"))
    write_bundle(tmp_path / "flat", "c2", {CAMERA_MODELS_FILE: {"weight": np.ones(3, np.float32)}})
    with pytest.raises(BundleError, match="tensor 'weight' is not named <kind>/<parameter>"):
        CameraStage(ModelConfig(), load_bundle(tmp_path / "flat"))


def test_compare_bundle_is_refused_for_a_scenario_without_a_plant(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_bundle(tmp_path / "b", "c1", {"site.json": {}})
    assert main(["evaluate", "--scenario", "mfpt", "--compare-bundle", str(tmp_path / "b"), "--out",
                 str(tmp_path / "out"), "--no-progress"]) == 2
    assert "--compare-bundle applies to the new-assets, semi-real, simulated scenarios" in capsys.readouterr().err
