"""Vibration: features of one accelerometer snapshot, and an online detector over them.

:class:`VibrationFeatures` turns a waveform into time-domain statistics, log-spaced band energies, the
spectral centroid and the envelope spectrum's energy at the bearing defect frequencies (BPFO, BPFI, BSF, FTF)
when the asset's kinematics are known. :class:`VibrationDetector` scores the feature dicts online with
river's HalfSpaceTrees on standardised features, and explains a score by the most deviant features.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = np.arange(25_600) / 25_600
>>> wave = (0.5 * np.sin(2 * np.pi * 25 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
>>> features = VibrationFeatures().transform(wave, 25_600.0, BearingFrequencies(25.0, 81.1, 118.9, 63.9, 14.8))
>>> round(features["rms"], 2), round(features["kurtosis"], 1), "env_bpfo" in features
(0.37, 1.7, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.fft
from river import anomaly, preprocessing


@dataclass(frozen=True)
class BearingFrequencies:
    """Shaft speed and bearing defect frequencies of an asset, in Hz."""

    shaft_hz: float
    bpfo_hz: float
    bpfi_hz: float
    bsf_hz: float
    ftf_hz: float


class VibrationFeatures:
    """Feature extractor for one vibration snapshot (stateless, so one instance serves every asset).

    Parameters
    ----------
    n_bands
        Number of log-spaced bands between ``band_low_hz`` and the Nyquist frequency.
    envelope_band_hz
        The band demodulated for the envelope spectrum; bearing impacts ring the structure's resonances here.
    """

    def __init__(
        self,
        n_bands: int = 8,
        band_low_hz: float = 10.0,
        envelope_band_hz: tuple[float, float] = (2_000.0, 8_000.0),
        harmonics: int = 3,
    ) -> None:
        self.n_bands = n_bands
        self.band_low_hz = band_low_hz
        self.envelope_band_hz = envelope_band_hz
        self.harmonics = harmonics

    def transform(
        self, samples: np.ndarray, sample_rate_hz: float, bearing: BearingFrequencies | None = None
    ) -> dict[str, float]:
        """Return the features of one waveform (the input is not modified)."""
        x = np.asarray(samples, dtype=np.float32)
        n = x.size
        mean = float(x.mean())
        centred = x - mean
        sq = centred * centred
        variance = float(sq.mean()) or 1e-12
        rms = math.sqrt(float(np.mean(x * x)))
        peak = float(np.abs(x).max())
        features: dict[str, float] = {
            "rms": rms,
            "peak": peak,
            "crest": peak / rms if rms > 0 else 0.0,
            "kurtosis": float(np.mean(sq * sq)) / variance**2,
            "skewness": float(np.mean(sq * centred)) / variance**1.5,
        }
        spectrum = scipy.fft.rfft(centred)
        power = spectrum.real**2 + spectrum.imag**2
        freqs_step = sample_rate_hz / n
        edges_hz = np.geomspace(self.band_low_hz, sample_rate_hz / 2, self.n_bands + 1)
        edges = np.clip((edges_hz / freqs_step).astype(int), 1, power.size)
        band_energy = np.add.reduceat(power, edges[:-1])[: self.n_bands] * (2.0 / n**2)
        for i, energy in enumerate(band_energy):
            features[f"band_{i}"] = math.log10(float(energy) + 1e-12)
        total = float(power.sum()) or 1e-12
        features["centroid_hz"] = float(np.dot(power, np.arange(power.size))) * freqs_step / total
        if bearing is not None:
            features.update(self._envelope_features(spectrum, n, sample_rate_hz, bearing))
        return features

    def _envelope_features(
        self, spectrum: np.ndarray, n: int, sample_rate_hz: float, bearing: BearingFrequencies
    ) -> dict[str, float]:
        """Energy of the envelope spectrum at the defect frequencies relative to its median floor (log10).

        The band is shifted to base band in the frequency domain and inverse-transformed on a short grid: the
        magnitude of that complex signal is the envelope of the band-passed waveform (Hilbert demodulation).
        """
        duration = n / sample_rate_hz
        low, high = (int(f * duration) for f in self.envelope_band_hz)
        high = min(high, spectrum.size - 1)
        band = spectrum[low:high]
        grid = 1 << max(8, int(math.ceil(math.log2(max(band.size, 2)))))
        envelope = np.abs(scipy.fft.ifft(band, n=grid))
        envelope -= envelope.mean()
        env_spectrum = np.abs(scipy.fft.rfft(envelope))
        hz_per_bin = 1.0 / duration  # the base-band envelope spans the same duration as the snapshot
        floor = float(np.median(env_spectrum[1 : min(env_spectrum.size, int(500 / hz_per_bin))])) or 1e-12
        result: dict[str, float] = {}
        for name, freq in (
            ("bpfo", bearing.bpfo_hz),
            ("bpfi", bearing.bpfi_hz),
            ("bsf", bearing.bsf_hz),
            ("ftf", bearing.ftf_hz),
        ):
            energy = 0.0
            for k in range(1, self.harmonics + 1):
                centre = int(round(k * freq / hz_per_bin))
                width = max(1, int(round(0.02 * k * freq / hz_per_bin)))
                lo, hi = max(centre - width, 1), min(centre + width + 1, env_spectrum.size)
                if lo < hi:
                    energy += float(env_spectrum[lo:hi].max())
            result[f"env_{name}"] = math.log10(energy / (self.harmonics * floor) + 1e-12)
        return result


class VibrationDetector:
    """Online detector over vibration features: river HalfSpaceTrees on standardised, squashed features.

    Each feature is standardised with river's running ``StandardScaler`` and squashed into (0, 1) by a
    logistic, which is the range HalfSpaceTrees partitions. ``explain`` returns the features furthest from
    their running mean, in standard deviations. Learning is the caller's decision: the pipeline only calls
    ``learn_one`` for windows it judges normal, so a growing fault does not become the new normal.
    """

    def __init__(self, n_trees: int = 25, height: int = 8, window_size: int = 500, seed: int = 0) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.trees = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)

    def _squash(self, x: Mapping[str, float]) -> dict[str, float]:
        z = self.scaler.transform_one(dict(x))
        return {name: 1.0 / (1.0 + math.exp(-max(min(value, 30.0), -30.0) / 2.0)) for name, value in z.items()}

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn one feature dict as normal."""
        self.scaler.learn_one(dict(x))
        self.trees.learn_one(self._squash(x))

    def score_one(self, x: Mapping[str, float]) -> float:
        """Anomaly score in [0, 1] of one feature dict (higher is more anomalous)."""
        return float(self.trees.score_one(self._squash(x)))

    def explain(self, x: Mapping[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` features with the largest absolute standard score, as (name, z)."""
        z = self.scaler.transform_one(dict(x))
        ranked = sorted(z.items(), key=lambda item: abs(item[1]), reverse=True)[:top]
        return [(name, round(float(value), 3)) for name, value in ranked]
