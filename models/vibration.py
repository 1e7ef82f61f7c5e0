"""Vibration: features of one accelerometer snapshot, and an online detector over them.

:class:`VibrationFeatures` turns a waveform into time-domain statistics, log-spaced band energies, the
spectral centroid and the envelope spectrum's energy at the bearing defect frequencies (BPFO, BPFI, BSF, FTF)
when the asset's kinematics are known. :class:`VibrationDetector` scores the feature dicts online by their
largest standardised deviations from normal, and explains a score by the most deviant features.
:func:`envelope_spectrum` exposes the same demodulation as a spectrum (to find the defect line itself), and
:func:`dominant_peak` picks its largest line in a frequency range.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = np.arange(25_600) / 25_600
>>> wave = (0.5 * np.sin(2 * np.pi * 25 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
>>> features = VibrationFeatures().transform(wave, 25_600.0, BearingKinematics(25.0, 81.1, 118.9, 63.9, 14.8))
>>> round(features["rms"], 2), round(features["kurtosis"], 1), "env_bpfo" in features
(0.37, 1.7, True)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import scipy.fft

from fusewatch.core.assets import BearingKinematics
from fusewatch.core.events import VIBRATION_FEATURES_VERSION
from models.deviation import DeviationDetector
from models.vibration_spectrum import (
    SliceArrays,
    SpectralPlan,
    Workspace,
    band_shares,
    defect_peaks,
    demodulate,
    envelope_floor,
    envelope_layout,
    power_spectrum,
    time_statistics,
)

_DEFECTS = ("env_bpfo", "env_bpfi", "env_bsf", "env_ftf")
_PARAMETERS = ("n_bands", "band_low_hz", "envelope_band_hz", "harmonics", "speed_tolerance")


class VibrationFeatures:
    """Feature extractor for vibration snapshots (its caches never change a result, so one instance serves every
    asset and thread).

    Parameters
    ----------
    n_bands
        Number of log-spaced bands between ``band_low_hz`` and the Nyquist frequency; each ``band_i`` feature is
        the band's share of the total power (log10), a spectral shape that load changes barely move.
    envelope_band_hz
        The band demodulated for the envelope spectrum; bearing impacts ring the structure's resonances here.
    harmonics
        How many harmonics of each defect frequency are summed.
    speed_tolerance
        Relative half-width searched around each defect line (running speed drifts with load).
    """

    slice_samples: int = 16 * 25_600
    """Samples computed together: a slice is ``slice_samples // n`` waveforms of ``n`` samples (at least one); 16
    snapshots of 25,600 samples measured fastest (docs/models.md, "Batched features")."""

    keep_bytes: int = 32 * 2**20
    """A thread keeps the memory its slices were computed in for its next call, up to this many bytes."""

    def __init__(
        self,
        n_bands: int = 8,
        band_low_hz: float = 10.0,
        envelope_band_hz: tuple[float, float] = (2_000.0, 8_000.0),
        harmonics: int = 3,
        speed_tolerance: float = 0.03,
    ) -> None:
        self.n_bands = n_bands
        self.band_low_hz = band_low_hz
        self.envelope_band_hz = envelope_band_hz
        self.harmonics = harmonics
        self.speed_tolerance = speed_tolerance
        self._band_names = tuple(f"band_{i}" for i in range(n_bands))
        self._plans: dict[tuple[int, float], SpectralPlan] = {}
        self._defect_windows: dict[tuple[int, float, BearingKinematics], np.ndarray] = {}
        self._local = threading.local()  # each thread's Workspace

    def __getstate__(self) -> dict[str, object]:
        """The parameters only: plans and workspaces are caches, rebuilt on use."""
        return {name: getattr(self, name) for name in _PARAMETERS}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Also reads the state of earlier versions, which carried their plan cache (``_plans``, dropped)."""
        self.__init__(**{name: state[name] for name in _PARAMETERS})  # type: ignore[misc]

    @property
    def version(self) -> str | None:
        """The wire name of the feature set this extractor computes (``features_version`` of a feature set computed
        at the edge), or ``None`` when its parameters are not the defaults the workers use.

        >>> VibrationFeatures().version, VibrationFeatures(n_bands=4).version
        ('vibration-v1', None)
        """
        defaults = (8, 10.0, (2_000.0, 8_000.0), 3, 0.03)
        ours = (self.n_bands, self.band_low_hz, tuple(self.envelope_band_hz), self.harmonics, self.speed_tolerance)
        return VIBRATION_FEATURES_VERSION if ours == defaults else None

    def transform(
        self, samples: np.ndarray, sample_rate_hz: float, bearing: BearingKinematics | None = None
    ) -> dict[str, float]:
        """Return the features of one waveform (the input is not modified).

        The computation :meth:`transform_batch` makes for a slice of one waveform (the same helpers), called without
        the batch's grouping: measured, a batch of one was 8 % slower than the extractor before batching, this 4 %
        (docs/models.md, "Batched features").
        """
        x, rate_hz = _checked("the waveform", samples, sample_rate_hz)
        return self._slice_features(_single(x), self._plan(x.size, rate_hz), rate_hz, [bearing])[0]

    def transform_batch(
        self, items: Sequence[tuple[np.ndarray, float, BearingKinematics | None]]
    ) -> list[dict[str, float]]:
        """The features of many waveforms ``(samples, sample_rate_hz, bearing)``, in order: the same dicts, bit for
        bit, as :meth:`transform` of each, computed in slices of waveforms of one length and sample rate (about
        :attr:`slice_samples` samples: one FFT call, one envelope demodulation and one reduction per statistic for
        the whole slice).

        Every item is checked before any is computed; a bad one raises :class:`ValueError` naming its index.

        >>> rng = np.random.default_rng(1)
        >>> waves = [rng.standard_normal(n).astype(np.float32) for n in (4096, 4096, 2048)]
        >>> bearing = BearingKinematics(25.0, 81.1, 118.9, 63.9, 14.8)
        >>> items = [(waves[0], 20_000.0, bearing), (waves[1], 20_000.0, None), (waves[2], 10_000.0, bearing)]
        >>> extractor = VibrationFeatures()
        >>> extractor.transform_batch(items) == [extractor.transform(*item) for item in items]
        True
        >>> extractor.transform_batch([(waves[0], 20_000.0, None), (np.zeros((2, 2)), 1_000.0, None)])
        Traceback (most recent call last):
        ...
        ValueError: item 1: expected a one-dimensional waveform of at least 1 sample, got shape (2, 2)
        """
        waveforms: list[np.ndarray] = []
        groups: dict[tuple[int, float], list[int]] = {}
        for index, (samples, rate, _) in enumerate(items):
            x, rate_hz = _checked(f"item {index}", samples, rate)
            waveforms.append(x)
            groups.setdefault((x.size, rate_hz), []).append(index)
        results: list[dict[str, float]] = [{} for _ in waveforms]
        space = self._workspace()
        for (n, rate_hz), indices in groups.items():
            plan = self._plan(n, rate_hz)
            step = max(1, self.slice_samples // n)
            for start in range(0, len(indices), step):
                part = indices[start : start + step]
                if len(part) == 1:  # computed in its own memory: see Workspace
                    arrays = _single(waveforms[part[0]])
                else:
                    arrays = space.arrays(len(part), n, plan.grid)
                    for row, index in zip(arrays.samples, part, strict=True):
                        row[...] = waveforms[index]  # to float32 as np.asarray(samples, dtype=np.float32) casts
                computed = self._slice_features(arrays, plan, rate_hz, [items[index][2] for index in part])
                for index, features in zip(part, computed, strict=True):
                    results[index] = features
        if space.nbytes > self.keep_bytes:
            self._local.space = None
        return results

    def _slice_features(self, arrays: SliceArrays, plan: SpectralPlan, sample_rate_hz: float,
                        bearings: list[BearingKinematics | None]) -> list[dict[str, float]]:
        """The features of each waveform of ``arrays.samples`` (one, or a stack of one length and sample rate)."""
        n = arrays.samples.shape[-1]
        single = arrays.samples.ndim == 1
        stats = time_statistics(arrays)
        spectrum, power = power_spectrum(stats.centred, arrays)
        shares, centroids = band_shares(power, plan, self.n_bands)
        columns = [values.tolist() for values in (stats.mean, stats.variance, stats.peak, stats.fourth, stats.third,
                                                  shares, centroids)]
        results = [self._features(n, *row) for row in ([columns] if single else zip(*columns, strict=True))]
        enveloped = [row for row, bearing in enumerate(bearings) if bearing is not None]
        if enveloped:
            whole = len(enveloped) == len(bearings)
            band = spectrum[..., plan.envelope_slice] if whole else spectrum[enveloped, plan.envelope_slice]
            env_spectra = demodulate(band, plan.grid, arrays)
            ratios = self._defect_ratios(env_spectra, plan, [bearings[row] for row in enveloped], n, sample_rate_hz)
            for row, values in zip(enveloped, [ratios.tolist()] if single else ratios.tolist(), strict=True):
                results[row].update(zip(_DEFECTS, map(math.log10, values), strict=True))
        return results

    def _features(self, n: int, mean: float, variance: float, peak: float, fourth: float, third: float,
                  shares: list[float], centroid_hz: float) -> dict[str, float]:
        """One waveform's time-domain and band features from its statistics (:func:`time_statistics`,
        :func:`band_shares`)."""
        variance = variance or 1e-12
        rms = math.sqrt(variance + mean * mean)
        features: dict[str, float] = {
            "rms": rms,
            "peak": peak,
            "crest": peak / rms if rms > 0 else 0.0,
            "kurtosis": fourth / n / variance**2,
            "skewness": third / n / variance**1.5,
        }
        for name, share in zip(self._band_names, shares, strict=True):
            features[name] = math.log10(share + 1e-12)
        features["centroid_hz"] = centroid_hz
        return features

    def _workspace(self) -> Workspace:
        """This thread's workspace."""
        space: Workspace | None = getattr(self._local, "space", None)
        if space is None:
            space = self._local.space = Workspace()
        return space

    def _plan(self, n: int, sample_rate_hz: float) -> SpectralPlan:
        """Index arrays that depend only on the snapshot length and sample rate (cached)."""
        plan = self._plans.get((n, sample_rate_hz))
        if plan is None:
            plan = SpectralPlan.build(n, sample_rate_hz, self.n_bands, self.band_low_hz, self.envelope_band_hz)
            self._plans[n, sample_rate_hz] = plan
        return plan

    def _windows(self, plan: SpectralPlan, n: int, sample_rate_hz: float, bearing: BearingKinematics) -> np.ndarray:
        """The defect windows of ``bearing`` in the envelope spectrum of ``plan`` (cached)."""
        key = (n, sample_rate_hz, bearing)
        windows = self._defect_windows.get(key)
        if windows is None:
            windows = plan.defect_windows(n, sample_rate_hz, bearing, self.harmonics, self.speed_tolerance)
            self._defect_windows[key] = windows
        return windows

    def _defect_ratios(self, env_spectra: np.ndarray, plan: SpectralPlan, bearings: list[BearingKinematics | None],
                       n: int, sample_rate_hz: float) -> np.ndarray:
        """Each envelope spectrum's peaks at the defect frequencies (harmonics summed) over its median floor, plus
        ``1e-12`` (the ``env_*`` features are their log10): ``(4,)`` for one spectrum, ``(count, 4)`` for a stack,
        whose rows are grouped by bearing (a group shares its defect windows)."""
        scale = 1.0 / (self.harmonics * envelope_floor(env_spectra, plan))
        if isinstance(scale, np.float64):  # one spectrum
            assert bearings[0] is not None
            windows = self._windows(plan, n, sample_rate_hz, bearings[0])
            return defect_peaks(env_spectra, windows, self.harmonics) * scale + 1e-12
        ratios = np.empty((len(env_spectra), 4))
        for bearing in dict.fromkeys(bearings):
            assert bearing is not None
            rows = [row for row, other in enumerate(bearings) if other == bearing]
            whole = len(rows) == len(bearings)
            windows = self._windows(plan, n, sample_rate_hz, bearing)
            peaks = defect_peaks(env_spectra if whole else env_spectra[rows], windows, self.harmonics)
            ratios[rows] = peaks * (scale if whole else scale[rows])[:, None] + 1e-12
        return ratios


class _SpectralPlan:
    """Reads the plans that checkpoints of earlier versions cached inside a :class:`VibrationFeatures`, so such a
    checkpoint still restores (:meth:`VibrationFeatures.__setstate__` drops them)."""


def _checked(where: str, samples: np.ndarray, rate: object) -> tuple[np.ndarray, float]:
    """The waveform as an array and its sample rate in Hz; :class:`ValueError` naming ``where`` if either is bad."""
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{where}: expected a one-dimensional waveform of at least 1 sample, got shape {x.shape}")
    try:
        hz = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        hz = math.nan
    if not (math.isfinite(hz) and hz > 0.0):
        raise ValueError(f"{where}: the sample rate must be a positive finite number of Hz, got {rate!r}")
    return x, hz


def _single(x: np.ndarray) -> SliceArrays:
    """One waveform as float32, read in place when it already is (aligned float32 gives the sums of a copy)."""
    in_place = x.dtype == np.float32 and x.flags.c_contiguous and x.flags.aligned
    return SliceArrays(x if in_place else x.astype(np.float32))


def envelope_spectrum(
    samples: np.ndarray, sample_rate_hz: float, band_hz: tuple[float, float] = (2_000.0, 8_000.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Envelope spectrum of the ``band_hz`` band of a waveform: ``(frequencies in Hz, amplitudes)``.

    The same Hilbert demodulation as :class:`VibrationFeatures` uses for its ``env_*`` features. Amplitudes
    are single-sided, in the unit of ``samples`` (an envelope ``1 + m cos(2 pi f t)`` gives ``m`` at ``f``);
    the resolution is one over the snapshot's duration, the range at least half the band's width. A band
    reaching past the Nyquist frequency is clipped to it.

    >>> t = np.arange(20_000) / 20_000
    >>> wave = (1 + 0.5 * np.cos(2 * np.pi * 100 * t)) * np.cos(2 * np.pi * 3_000 * t)
    >>> freqs, amps = envelope_spectrum(wave, 20_000.0, (2_000.0, 4_000.0))
    >>> dominant_peak(freqs, amps, 50.0, 200.0)
    (100.0, 0.5)
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"expected a one-dimensional waveform of at least 2 samples, got shape {x.shape}")
    low_hz, high_hz = band_hz
    if not 0.0 <= low_hz < high_hz or low_hz >= sample_rate_hz / 2:
        raise ValueError(f"envelope band {band_hz} Hz is empty or above the Nyquist frequency {sample_rate_hz / 2} Hz")
    band, grid = envelope_layout(x.size, sample_rate_hz, band_hz)
    amplitudes = demodulate(scipy.fft.rfft(x - x.mean())[band], grid) * (4.0 / x.size)
    return np.arange(amplitudes.size) * (sample_rate_hz / x.size), amplitudes


def dominant_peak(freqs: np.ndarray, amps: np.ndarray, low_hz: float, high_hz: float) -> tuple[float, float]:
    """The frequency and amplitude of the largest amplitude with ``low_hz <= freq <= high_hz``.

    >>> dominant_peak(np.array([0.0, 1.0, 2.0, 3.0]), np.array([9.0, 1.0, 3.0, 2.0]), 1.0, 3.0)
    (2.0, 3.0)
    """
    inside = np.flatnonzero((freqs >= low_hz) & (freqs <= high_hz))
    if inside.size == 0:
        raise ValueError(f"no frequency between {low_hz} and {high_hz} Hz")
    best = int(inside[np.argmax(amps[inside])])
    return float(freqs[best]), float(amps[best])

class VibrationDetector(DeviationDetector):
    """Online detector over vibration features: the largest standardised deviations from normal.

    A bearing defect moves a handful of features (envelope lines, kurtosis, crest factor, high bands) far from
    normal while the other features stay put; a detector that averages over all features, or partitions them
    at random as HalfSpaceTrees does, dilutes that signal (measured on the simulator: HalfSpaceTrees' score
    fell while ``env_bpfo`` rose six standard deviations). Absolute energies (``ignore``: RMS and peak) follow
    the operating load, which the contracts do not carry, so they are reported but not scored: a machine at an
    unusual load is not a faulty one. Learning is the caller's decision: the pipeline calls ``learn_one`` only
    for windows it judges normal, so a growing fault does not become the new normal.

    >>> detector = VibrationDetector(top_k=1)
    >>> for i in range(100):
    ...     detector.learn_one({"rms": 1.0 + 0.01 * (i % 10), "kurtosis": 3.0 + 0.01 * (i % 7)})
    >>> detector.score_one({"rms": 5.0, "kurtosis": 3.03}) < 4   # a change of load alone is not a fault
    True
    """

    def __init__(self, top_k: int = 3, min_std: float = 1e-6, ignore: tuple[str, ...] = ("rms", "peak")) -> None:
        super().__init__(top_k=top_k, min_std=min_std, ignore=ignore)
