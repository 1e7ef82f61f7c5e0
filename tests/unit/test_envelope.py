"""envelope_spectrum and dominant_peak on synthetic amplitude-modulated and impulsive signals."""

from __future__ import annotations

import numpy as np
import pytest

from fusewatch.core.assets import BearingKinematics
from models.vibration import VibrationFeatures, dominant_peak, envelope_spectrum

RATE = 25_600.0


def _am(modulation_hz: float, depth: float, carrier_hz: float = 4_000.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (1.0 + depth * np.cos(2 * np.pi * modulation_hz * t)) * np.cos(2 * np.pi * carrier_hz * t)


def test_am_signal_gives_its_modulation_frequency_and_depth() -> None:
    rng = np.random.default_rng(0)
    wave = _am(120.0, 0.3) + 0.05 * rng.standard_normal(int(RATE))
    freqs, amps = envelope_spectrum(wave, RATE, (2_000.0, 8_000.0))
    assert freqs[1] - freqs[0] == pytest.approx(1.0)  # one over the snapshot's duration
    assert amps[0] == pytest.approx(0.0, abs=1e-9)  # the envelope's mean is removed
    peak_hz, peak_amp = dominant_peak(freqs, amps, 50.0, 200.0)
    assert peak_hz == 120.0
    assert peak_amp == pytest.approx(0.3, rel=0.05)


def test_unmodulated_tone_has_a_flat_envelope() -> None:
    freqs, amps = envelope_spectrum(_am(120.0, 0.0), RATE, (2_000.0, 8_000.0))
    assert amps.max() < 1e-6
    assert freqs[-1] >= 3_000.0  # the envelope spans at least half the band's width


def test_carrier_outside_the_band_leaves_no_line() -> None:
    freqs, amps = envelope_spectrum(_am(120.0, 0.3, carrier_hz=1_000.0), RATE, (2_000.0, 8_000.0))
    assert dominant_peak(freqs, amps, 50.0, 200.0)[1] < 1e-3


def test_periodic_impacts_ringing_a_resonance_show_their_repetition_rate() -> None:
    """A bearing-like signal: decaying 3.5 kHz bursts at BPFO (81.125 Hz) in noise, float32 like the sensors."""
    rng = np.random.default_rng(1)
    n = int(RATE)
    t = np.arange(n) / RATE
    impulses = np.zeros(n)
    impulses[np.round(np.arange(0.0, 1.0, 1 / 81.125) * RATE).astype(int) % n] = 1.0
    ring = np.exp(-t[:256] * 800.0) * np.sin(2 * np.pi * 3_500.0 * t[:256])
    wave = (np.convolve(impulses, ring)[:n] + 0.2 * rng.standard_normal(n)).astype(np.float32)
    before = wave.copy()
    freqs, amps = envelope_spectrum(wave, RATE)
    np.testing.assert_array_equal(wave, before)
    peak_hz, _ = dominant_peak(freqs, amps, 50.0, 200.0)
    assert abs(peak_hz - 81.125) / 81.125 < 0.02
    # the features read the same demodulation: the BPFO line stands out of the other defect lines
    bearing = BearingKinematics(25.0, 81.125, 118.875, 63.91, 14.8375)
    features = VibrationFeatures().transform(wave, RATE, bearing)
    assert features["env_bpfo"] > max(features["env_bpfi"], features["env_bsf"], features["env_ftf"]) + 0.3


def test_band_past_nyquist_is_clipped_and_bad_bands_are_refused() -> None:
    wave = _am(100.0, 0.5)
    freqs, amps = envelope_spectrum(wave, RATE, (2_000.0, 50_000.0))
    assert dominant_peak(freqs, amps, 50.0, 200.0)[0] == 100.0
    for band in ((8_000.0, 2_000.0), (13_000.0, 14_000.0), (-1.0, 2_000.0)):
        with pytest.raises(ValueError):
            envelope_spectrum(wave, RATE, band)
    with pytest.raises(ValueError):
        envelope_spectrum(np.zeros((2, 100)), RATE)


def test_dominant_peak_needs_a_frequency_in_range() -> None:
    with pytest.raises(ValueError, match="no frequency"):
        dominant_peak(np.array([0.0, 1.0]), np.array([1.0, 2.0]), 5.0, 10.0)
