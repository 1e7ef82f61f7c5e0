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
from dataclasses import dataclass

import numpy as np
import scipy.fft

from fusewatch.core.assets import BearingKinematics
from fusewatch.core.events import VIBRATION_FEATURES_VERSION
from models.deviation import DeviationDetector


class VibrationFeatures:
    """Feature extractor for one vibration snapshot (stateless, so one instance serves every asset).

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
        self._plans: dict[tuple[int, float, BearingKinematics | None], _SpectralPlan] = {}

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
        """Return the features of one waveform (the input is not modified)."""
        x = np.asarray(samples, dtype=np.float32)
        n = x.size
        mean = float(x.mean())
        centred = x - mean
        sq = centred * centred
        variance = float(sq.mean()) or 1e-12
        rms = math.sqrt(variance + mean * mean)
        peak = float(np.abs(x).max())
        features: dict[str, float] = {
            "rms": rms,
            "peak": peak,
            "crest": peak / rms if rms > 0 else 0.0,
            "kurtosis": float(np.dot(sq, sq)) / n / variance**2,
            "skewness": float(np.dot(sq, centred)) / n / variance**1.5,
        }
        plan = self._plan(n, sample_rate_hz, bearing)
        # float64 spectrum: quiet bands of a float32 spectrum square into subnormal numbers, which are very slow
        spectrum = scipy.fft.rfft(centred.astype(np.float64))
        power = spectrum.real**2 + spectrum.imag**2
        total = float(power.sum()) or 1e-12
        band_share = np.add.reduceat(power, plan.band_edges)[: self.n_bands] * (1.0 / total)
        for name, share in zip(plan.band_names, band_share.tolist(), strict=False):
            features[name] = math.log10(share + 1e-12)
        features["centroid_hz"] = float(np.dot(power, plan.bin_index)) * plan.hz_per_bin / total
        if plan.defect_windows is not None:
            features.update(self._envelope_features(spectrum, plan))
        return features

    def _plan(self, n: int, sample_rate_hz: float, bearing: BearingKinematics | None) -> _SpectralPlan:
        """Index arrays that depend only on the snapshot length, sample rate and bearing (cached)."""
        key = (n, sample_rate_hz, bearing)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        bins = n // 2 + 1
        hz_per_bin = sample_rate_hz / n
        edges_hz = np.geomspace(self.band_low_hz, sample_rate_hz / 2, self.n_bands + 1)
        band_edges = np.clip((edges_hz / hz_per_bin).astype(int), 1, bins - 1)[:-1]
        envelope_slice, grid = _envelope_layout(n, sample_rate_hz, self.envelope_band_hz)
        env_bins = grid // 2 + 1
        env_hz_per_bin = sample_rate_hz / n  # the base-band envelope spans the same duration as the snapshot
        windows = None
        if bearing is not None:
            bounds: list[int] = []
            for freq in (bearing.bpfo_hz, bearing.bpfi_hz, bearing.bsf_hz, bearing.ftf_hz):
                for k in range(1, self.harmonics + 1):
                    centre = k * freq / env_hz_per_bin
                    width = max(1.0, self.speed_tolerance * centre)
                    lo = min(max(int(centre - width), 1), env_bins - 2)
                    bounds += [lo, min(max(int(centre + width) + 1, lo + 1), env_bins - 1)]
            windows = np.array(bounds)
        plan = _SpectralPlan(
            hz_per_bin=hz_per_bin,
            band_edges=band_edges,
            band_names=tuple(f"band_{i}" for i in range(self.n_bands)),
            bin_index=np.arange(bins, dtype=np.float64),
            envelope_slice=envelope_slice,
            grid=grid,
            floor_slice=slice(1, max(2, min(env_bins, int(500 / env_hz_per_bin)))),
            defect_windows=windows,
        )
        self._plans[key] = plan
        return plan

    def _envelope_features(self, spectrum: np.ndarray, plan: _SpectralPlan) -> dict[str, float]:
        """Envelope-spectrum peaks at the defect frequencies (harmonics summed) over the median floor, log10.

        The demodulation is :func:`_demodulate`, shared with :func:`envelope_spectrum`.
        """
        env_spectrum = _demodulate(spectrum, plan.envelope_slice, plan.grid)
        floor = float(np.median(env_spectrum[plan.floor_slice])) or 1e-12
        assert plan.defect_windows is not None
        peaks = np.maximum.reduceat(env_spectrum, plan.defect_windows)[::2].reshape(4, self.harmonics).sum(axis=1)
        scale = 1.0 / (self.harmonics * floor)
        return {
            f"env_{name}": math.log10(value * scale + 1e-12)
            for name, value in zip(("bpfo", "bpfi", "bsf", "ftf"), peaks.tolist(), strict=False)
        }


@dataclass(frozen=True)
class _SpectralPlan:
    hz_per_bin: float
    band_edges: np.ndarray
    band_names: tuple[str, ...]
    bin_index: np.ndarray
    envelope_slice: slice
    grid: int
    floor_slice: slice
    defect_windows: np.ndarray | None


def _envelope_layout(n: int, sample_rate_hz: float, band_hz: tuple[float, float]) -> tuple[slice, int]:
    """The spectrum bins of ``band_hz`` (clipped to Nyquist) and the envelope grid length (a power of two)."""
    bins = n // 2 + 1
    hz_per_bin = sample_rate_hz / n
    low, high = (min(int(f / hz_per_bin), bins - 1) for f in band_hz)
    grid = 1 << max(8, math.ceil(math.log2(max(high - low, 2))))
    return slice(low, high), grid


def _demodulate(spectrum: np.ndarray, band: slice, grid: int) -> np.ndarray:
    """Magnitude spectrum of the envelope of one band of a waveform, given the waveform's ``rfft``.

    The band is shifted to base band in the frequency domain and inverse-transformed on a short grid: the
    magnitude of that complex signal is the envelope of the band-passed waveform (Hilbert demodulation). Bin
    ``k`` of the result is ``k`` cycles per snapshot; the scale is ``n / 4`` times the single-sided amplitude.
    """
    envelope = np.abs(scipy.fft.ifft(spectrum[band], n=grid))
    envelope -= envelope.mean()
    result: np.ndarray = np.abs(scipy.fft.rfft(envelope))
    return result


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
    band, grid = _envelope_layout(x.size, sample_rate_hz, band_hz)
    amplitudes = _demodulate(scipy.fft.rfft(x - x.mean()), band, grid) * (4.0 / x.size)
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
