"""Model bundles: written whole and reproducibly, read back exactly, and refused with one clear error when they are
missing, damaged, tampered with or would need pickle."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fusewatch.cli import main
from fusewatch.core.errors import BundleError, IncompatibleStateError
from models.bundle import MANIFEST, load_bundle, write_bundle
from streams.model_config import ModelConfig
from streams.pipeline import Pipeline
from streams.processor import StreamProcessor
from streams.runners.embedded import CollectingOutput
from streams.settings import StreamSettings


def parts() -> dict[str, object]:
    rng = np.random.default_rng(7)
    return {
        "site.json": {"pump": {"warmup_hours": 2.0, "bands": [0.1, 0.2]}},
        "calibration.npz": {"pump_history": rng.normal(size=500), "counts": np.arange(4, dtype=np.int64)},
        "weights.safetensors": {"encoder.0.weight": rng.normal(size=(8, 1, 4, 4)).astype(np.float32)},
    }


def test_a_bundle_reads_back_exactly_what_was_written(tmp_path: Path) -> None:
    written = parts()
    write_bundle(tmp_path / "b", "2026.12-a", written, description="pumps", made_from={"seeds": [1, 2]})
    bundle = load_bundle(tmp_path / "b")
    assert bundle.version == "2026.12-a" and bundle.names == ["calibration.npz", "site.json", "weights.safetensors"]
    assert bundle.json("site.json") == written["site.json"]
    arrays = bundle.arrays("calibration.npz")
    assert np.array_equal(arrays["pump_history"], written["calibration.npz"]["pump_history"])  # type: ignore[index]
    assert arrays["counts"].dtype == np.int64
    tensors = bundle.tensors("weights.safetensors")
    assert np.array_equal(tensors["encoder.0.weight"], written["weights.safetensors"]["encoder.0.weight"])  # type: ignore[index]
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert manifest["made_from"] == {"seeds": [1, 2]} and manifest["description"] == "pumps"
    for name, entry in manifest["files"].items():
        data = (tmp_path / "b" / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_the_same_content_gives_the_same_files(tmp_path: Path) -> None:
    first = write_bundle(tmp_path / "one", "1", parts())
    second = write_bundle(tmp_path / "two", "1", parts())
    assert first.manifest["files"] == second.manifest["files"]


@pytest.mark.parametrize(
    ("version", "files", "problem"),
    [
        ("1 0", {"a.json": 1}, "version '1 0'"),
        ("1", {"../escape.json": 1}, "'../escape.json'"),
        ("1", {"model.pkl": 1}, "'model.pkl'"),
        ("1", {"objects.npz": {"x": np.array([{"a": 1}], dtype=object)}}, "object arrays would need pickle"),
    ],
)
def test_what_cannot_be_a_bundle_is_refused_before_anything_is_written(
    tmp_path: Path, version: str, files: dict[str, object], problem: str
) -> None:
    with pytest.raises(BundleError, match=problem.replace("(", r"\(")):
        write_bundle(tmp_path / "b", version, files)
    assert not list(tmp_path.iterdir())


def test_a_bundle_is_never_overwritten(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", "1", parts())
    with pytest.raises(BundleError, match="exists already"):
        write_bundle(tmp_path / "b", "2", {"a.json": 1})
    assert load_bundle(tmp_path / "b").version == "1"


def damage_flip_a_byte(path: Path) -> None:
    target = path / "weights.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))


def damage_truncate(path: Path) -> None:
    target = path / "calibration.npz"
    target.write_bytes(target.read_bytes()[:-10])


def damage_remove(path: Path) -> None:
    (path / "site.json").unlink()


def damage_add_a_file(path: Path) -> None:
    (path / "extra.json").write_text("{}")


def damage_manifest(path: Path) -> None:
    (path / MANIFEST).write_text("{not json")


def damage_format(path: Path) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**manifest, "format": 99}))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (damage_flip_a_byte, "weights.safetensors: its SHA-256 is not the manifest's"),
        (damage_truncate, "calibration.npz: .* bytes, the manifest says"),
        (damage_remove, "site.json: listed in the manifest but missing"),
        (damage_add_a_file, "extra.json: not in the manifest"),
        (damage_manifest, "manifest.json: not valid JSON"),
        (damage_format, "format 99, this fusewatch reads format 1"),
    ],
)
def test_a_damaged_bundle_is_one_error_naming_the_file(tmp_path: Path, damage, problem: str) -> None:
    write_bundle(tmp_path / "b", "1", parts())
    damage(tmp_path / "b")
    with pytest.raises(BundleError, match=problem) as raised:
        load_bundle(tmp_path / "b")
    assert str(raised.value).startswith(f"bundle {tmp_path / 'b'}: ")


def test_a_missing_bundle_or_a_directory_without_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such directory"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=re.escape("no manifest.json: not a bundle")):
        load_bundle(tmp_path / "empty")


def test_an_npz_that_needs_pickle_is_refused_even_when_its_checksum_matches(tmp_path: Path) -> None:
    """A bundle made by other means, with a pickled object array inside a consistent manifest."""
    write_bundle(tmp_path / "b", "1", {"a.json": 1})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, archive.open("x.npy", "w") as member:
        np.lib.format.write_array(member, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    data = buffer.getvalue()
    (tmp_path / "b" / "evil.npz").write_bytes(data)
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["files"]["evil.npz"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    bundle = load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match=re.escape("evil.npz: not a numpy .npz without pickles")):
        bundle.arrays("evil.npz")


def test_a_part_is_read_only_as_its_own_kind(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", "1", parts())
    with pytest.raises(BundleError, match=re.escape("site.json: expected a .npz file")):
        bundle.arrays("site.json")
    with pytest.raises(BundleError, match=re.escape("missing.json: not in this bundle")):
        bundle.json("missing.json")


def test_the_pipeline_names_its_bundle_in_every_score_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    assert Pipeline(ModelConfig()).model_version.endswith(".s" + str(Pipeline(ModelConfig()).state_version))
    write_bundle(tmp_path / "b", "2026.12-a", parts())
    pipeline = Pipeline(ModelConfig(bundle=tmp_path / "b"))
    assert pipeline.model_version.endswith(".b2026.12-a") and pipeline.bundle_version == "2026.12-a"
    damage_flip_a_byte(tmp_path / "b")
    with pytest.raises(BundleError, match=re.escape("weights.safetensors")):
        Pipeline(ModelConfig(bundle=tmp_path / "b"))


@pytest.mark.parametrize(
    "command", [["demo", "--assets", "1", "--days", "0.01"], ["evaluate", "--scenario", "simulated"]]
)
def test_a_scoring_command_stops_before_it_starts_on_a_damaged_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    write_bundle(tmp_path / "b", "1", parts())
    damage_remove(tmp_path / "b")
    monkeypatch.setenv("FUSEWATCH_MODELS__BUNDLE", str(tmp_path / "b"))
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    assert f"bundle {tmp_path / 'b'}: site.json: listed in the manifest but missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bundle_show_checks_the_files_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_bundle(tmp_path / "b", "2026.12-a", parts(), description="pumps and motors", made_from={"seeds": [1, 2]})
    assert main(["bundle", "show", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"bundle {tmp_path / 'b'}: version 2026.12-a, format 1")
    assert "pumps and motors" in out and '{"seeds": [1, 2]}' in out and "files (every SHA-256 checked): 3" in out
    assert main(["bundle", "show", "--json", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "2026.12-a"
    damage_flip_a_byte(tmp_path / "b")
    assert main(["bundle", "show", str(tmp_path / "b")]) == 2
    assert "weights.safetensors: its SHA-256 is not the manifest's" in capsys.readouterr().err


def test_a_state_learned_with_another_bundle_is_not_restored(tmp_path: Path) -> None:
    write_bundle(tmp_path / "a", "a1", parts())
    write_bundle(tmp_path / "b", "b1", parts())

    def processor(bundle: Path | None) -> StreamProcessor:
        settings = StreamSettings(models=ModelConfig(bundle=bundle))
        return StreamProcessor(settings, CollectingOutput())

    with_a = processor(tmp_path / "a").snapshot()
    for other, named in ((tmp_path / "b", "b1"), (None, "(none)")):
        expected = re.escape(f"learned with bundle a1, this processor uses {named}")
        with pytest.raises(IncompatibleStateError, match=expected):
            processor(other).restore(with_a)
    processor(tmp_path / "a").restore(with_a)  # the same bundle: restored
    with pytest.raises(IncompatibleStateError, match=re.escape("learned with bundle (none), this processor uses a1")):
        processor(tmp_path / "a").restore(processor(None).snapshot())


def test_a_checkpoint_written_before_bundles_existed_still_restores_and_scores_new_assets() -> None:
    """A state pickled by the previous version: no ``bundle_version`` on the pipeline, no ``fleet`` on the logs."""
    old = StreamProcessor(StreamSettings(), CollectingOutput())
    del old.pipeline.bundle_version
    del old.pipeline.stages[2].fleet  # type: ignore[attr-defined]
    snapshot = old.snapshot()
    restored = StreamProcessor(StreamSettings(), CollectingOutput())
    restored.restore(snapshot)
    assert restored.pipeline.bundle_version is None
    assert restored.pipeline.stages[2].new_state(0).model.positives == 0  # a new asset's own model, as before
    restored.restore(restored.snapshot())  # and it restores again


def test_a_missing_part_is_named_once_whatever_its_kind(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b", "1", {"a.json": 1})
    for read, name in ((bundle.json, "x.json"), (bundle.arrays, "x.npz"), (bundle.tensors, "x.safetensors")):
        with pytest.raises(BundleError) as raised:
            read(name)
        assert raised.value.problem == f"{name}: not in this bundle (it has a.json)"
