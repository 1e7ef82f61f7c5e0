"""VibrationFeatures.transform_batch: the same features, bit for bit, as one waveform at a time, and the same numbers as
the feature extractor before batching (edge feature sets computed by older code must keep matching)."""

from __future__ import annotations

import copyreg
import io
import pickle
import threading
from typing import Any

import numpy as np
import pytest

from fusewatch.core.assets import BearingKinematics
from models.vibration import VibrationFeatures, _SpectralPlan

BEARING = BearingKinematics(25.0, 81.1, 118.9, 63.9, 14.8)
MFPT = BearingKinematics(25.0, 81.125, 118.875, 63.91, 14.8375)


def wave(seed: int, n: int, rate: float, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """A shaft tone, noise and impacts (the impacts make kurtosis, skewness and the envelope lines non-trivial)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 0.5 * np.sin(2 * np.pi * 25.0 * t) + 0.1 * rng.standard_normal(n)
    x[:: max(1, int(rate / 81.1))] += 2.0 * (seed + 1)
    return (x + 0.05 * seed).astype(dtype)


# Computed by the extractor as it was before transform_batch existed (one snapshot at a time), from wave(seed, ...).
BEFORE: list[tuple[tuple[int, int, float, BearingKinematics | None, type[np.floating]], dict[str, float]]] = [
    ((0, 25_600, 25_600.0, BEARING, np.float32), {
        "rms": 0.38331676407132614, "peak": 2.508563280105591, "crest": 6.544360996532901,
        "kurtosis": 4.025386531601875, "skewness": 0.4270782716274943, "band_0": -4.204329037497505,
        "band_1": -0.07130643966887748, "band_2": -2.964832306903526, "band_3": -2.563276030015884,
        "band_4": -2.2258373896766344, "band_5": -1.8286068563147237, "band_6": -1.4317505974019078,
        "band_7": -1.0471620392422656, "centroid_hz": 994.8416088682036, "env_bpfo": 1.3582453198673377,
        "env_bpfi": 0.9848547262294778, "env_bsf": 0.29874494072200286, "env_ftf": 0.2114153985564306}),
    ((1, 20_000, 20_000.0, None, np.float32), {
        "rms": 0.4524579745707717, "peak": 4.703431129455566, "crest": 10.395288388755924,
        "kurtosis": 27.69025146862752, "skewness": 2.87880389619283, "band_0": -4.037226475809063,
        "band_1": -0.20477887668354586, "band_2": -2.5085299952391495, "band_3": -2.250401370343393,
        "band_4": -1.744234693250441, "band_5": -1.4310543937037088, "band_6": -1.0387073890193432,
        "band_7": -0.6565196972376699, "centroid_hz": 1914.4040860372832}),
    ((2, 24_414, 48_828.0, MFPT, np.float64), {
        "rms": 0.45830266886758575, "peak": 6.700772285461426, "crest": 14.620845001881134,
        "kurtosis": 58.989799477236765, "skewness": 4.156609806861174, "band_0": -0.47280585606941444,
        "band_1": -0.530277558696313, "band_2": -2.5917075002582557, "band_3": -2.325039510964867,
        "band_4": -1.9197124225639903, "band_5": -1.4845495870579715, "band_6": -1.0752881693673917,
        "band_7": -0.6473826008633207, "centroid_hz": 4436.630351341297, "env_bpfo": 1.4576117580697878,
        "env_bpfi": 0.9865232258598796, "env_bsf": 0.007948793449983832, "env_ftf": -0.0021022976361321794}),
    ((3, 4_096, 20_000.0, BEARING, np.float32), {
        "rms": 0.6567431118935543, "peak": 8.750523567199707, "crest": 13.32411929219899,
        "kurtosis": 107.9851839885111, "skewness": 8.408538006520812, "band_0": -2.9457935782229967,
        "band_1": -0.5182543816622706, "band_2": -2.188048726812661, "band_3": -1.9025409176744286,
        "band_4": -1.498392841737537, "band_5": -1.1609226862516409, "band_6": -0.77346723868081,
        "band_7": -0.3901995037470326, "centroid_hz": 3505.8766777731926, "env_bpfo": 1.212274118852374,
        "env_bpfi": 0.8222237011217083, "env_bsf": 0.12123158347977882, "env_ftf": -0.16750774073710467}),
]


def assert_same(got: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    """Same keys in the same order, and the same values bit for bit."""
    assert [list(g) for g in got] == [list(e) for e in expected]
    assert got == expected


@pytest.mark.parametrize(("case", "expected"), BEFORE, ids=[f"seed{case[0]}" for case, _ in BEFORE])
def test_features_are_those_computed_before_batching(
    case: tuple[int, int, float, BearingKinematics | None, type[np.floating]], expected: dict[str, float]
) -> None:
    seed, n, rate, bearing, dtype = case
    extractor = VibrationFeatures()
    alone = extractor.transform(wave(seed, n, rate, dtype), rate, bearing)
    assert list(alone) == list(expected)
    assert alone == pytest.approx(expected, rel=1e-12, abs=0.0)
    stacked = extractor.transform_batch([(wave(seed + 10 * k, n, rate, dtype), rate, bearing) for k in range(3)])
    assert stacked[0] == alone  # the first row of a stack of three


def mixed_items() -> list[tuple[np.ndarray, float, BearingKinematics | None]]:
    """Lengths, rates, two bearings and none, interleaved; a constant waveform, tiny ones, float64 input, and one
    (length, rate) group of a single waveform."""
    items: list[tuple[np.ndarray, float, BearingKinematics | None]] = []
    for k in range(12):
        n, rate = [(25_600, 25_600.0), (4_096, 20_000.0), (4_097, 20_000.0), (4_096, 10_000.0)][k % 4]
        items.append((wave(k, n, rate, np.float64 if k % 5 == 0 else np.float32), rate, [BEARING, MFPT, None][k % 3]))
    items.append((np.full(4_096, 0.7, dtype=np.float32), 20_000.0, BEARING))  # constant: zero variance and power
    items.append((np.zeros(4_096, dtype=np.float32), 20_000.0, None))  # silent
    items.append((wave(99, 3_000, 12_000.0), 12_000.0, MFPT))  # the only waveform of its length and rate
    items += [(np.array([0.25], dtype=np.float32), 1_000.0, BEARING), (np.array([1.0, -1.0]), 1_000.0, None),
              (np.array([1.0, -1.0], dtype=np.float32), 1_000.0, BEARING)]
    return items


@pytest.mark.parametrize("slice_samples", [4_096 * 2, 25_600 * 16], ids=["slices-of-2", "default-slices"])
def test_a_batch_gives_what_each_waveform_gives_alone(slice_samples: int) -> None:
    items = mixed_items()
    extractor = VibrationFeatures()
    extractor.slice_samples = slice_samples
    batch = extractor.transform_batch(items)
    one_by_one = [VibrationFeatures().transform(*item) for item in items]
    assert_same(batch, one_by_one)
    assert all(np.isfinite(list(features.values())).all() for features in batch)
    assert "env_bpfo" in batch[12] and "env_bpfo" not in batch[13]
    assert extractor.transform_batch([]) == []


def test_inputs_are_not_modified_and_layout_does_not_matter() -> None:
    x = wave(5, 4_096, 20_000.0)
    kept = x.copy()
    extractor = VibrationFeatures()
    expected = extractor.transform(x, 20_000.0, BEARING)
    raw = b"\0" + x.tobytes()
    unaligned = np.frombuffer(raw, dtype=np.float32, offset=1)  # as a view at an odd offset of a message would be
    assert not unaligned.flags.aligned
    strided = np.repeat(x, 2)[::2]
    big_endian = x.astype(">f4")
    results = extractor.transform_batch([(unaligned, 20_000.0, BEARING), (strided, 20_000.0, BEARING),
                                         (big_endian, 20_000.0, BEARING), (x.tolist(), 20_000.0, BEARING)])
    assert_same(results, [expected] * 4)
    assert_same([extractor.transform(unaligned, 20_000.0, BEARING)], [expected])
    assert np.array_equal(x, kept)


SHAPE = "item 1: expected a one-dimensional waveform of at least 1 sample, got shape"
RATE = "item 1: the sample rate must be a positive finite number of Hz, got"


@pytest.mark.parametrize(("item", "message"), [
    ((np.zeros((2, 8)), 1_000.0, None), f"{SHAPE} (2, 8)"),
    ((np.zeros(0), 1_000.0, None), f"{SHAPE} (0,)"),
    ((np.zeros(8), 0.0, None), f"{RATE} 0.0"),
    ((np.zeros(8), float("nan"), None), f"{RATE} nan"),
    ((np.zeros(8), "fast", None), f"{RATE} 'fast'"),
])
def test_a_bad_item_is_named(item: tuple[np.ndarray, float, BearingKinematics | None], message: str) -> None:
    with pytest.raises(ValueError) as info:
        VibrationFeatures().transform_batch([(np.ones(8), 1_000.0, None), item])
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        VibrationFeatures().transform(*item)
    assert str(info.value) == message.replace("item 1", "the waveform")


def test_threads_share_one_extractor() -> None:
    items = [(wave(k, 4_096, 20_000.0), 20_000.0, BEARING) for k in range(8)]
    extractor = VibrationFeatures()
    expected = extractor.transform_batch(items)
    results: list[list[dict[str, float]]] = []

    def work() -> None:
        for _ in range(5):
            results.append(extractor.transform_batch(items))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 10 and all(result == expected for result in results)


def test_memory_above_keep_bytes_is_released() -> None:
    extractor = VibrationFeatures()
    extractor.keep_bytes = 1_000_000
    items = [(wave(k, 25_600, 25_600.0), 25_600.0, BEARING) for k in range(4)]
    expected = [extractor.transform(*item) for item in items]
    assert_same(extractor.transform_batch(items), expected)  # a stack of 4: ~2.8 MB of workspace, not kept
    assert getattr(extractor._local, "space", None) is None


def test_pickles_its_parameters_only_and_restores_older_checkpoints() -> None:
    extractor = VibrationFeatures(n_bands=6)
    x = wave(1, 4_096, 20_000.0)
    expected = extractor.transform(x, 20_000.0, BEARING)
    raw = pickle.dumps(extractor)
    assert len(raw) < 400  # no plans, no workspace
    assert pickle.loads(raw).transform(x, 20_000.0, BEARING) == expected

    # A checkpoint written before batching pickled the plan cache too, as instances of models.vibration._SpectralPlan.
    old_plan = _SpectralPlan()
    old_plan.__dict__.update(hz_per_bin=4.88, band_edges=np.arange(6), grid=2048)
    old_state = {"n_bands": 6, "band_low_hz": 10.0, "envelope_band_hz": (2_000.0, 8_000.0), "harmonics": 3,
                 "speed_tolerance": 0.03, "_plans": {(4_096, 20_000.0, BEARING): old_plan}}

    class OldPickler(pickle.Pickler):
        def reducer_override(self, obj: object) -> Any:
            if isinstance(obj, VibrationFeatures):
                return copyreg.__newobj__, (VibrationFeatures,), old_state  # type: ignore[attr-defined]
            return NotImplemented

    buffer = io.BytesIO()
    OldPickler(buffer, protocol=5).dump(extractor)
    assert b"_SpectralPlan" in buffer.getvalue()
    restored = pickle.loads(buffer.getvalue())
    assert restored.n_bands == 6 and restored.transform(x, 20_000.0, BEARING) == expected
