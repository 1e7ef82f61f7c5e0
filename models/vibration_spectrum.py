"""The numerics behind :class:`models.vibration.VibrationFeatures`: one waveform, or a stack of them of one length.

Every function works along the last axis of its arrays: a 1-D waveform, or a 2-D stack with one waveform per row,
so one call serves a whole slice of snapshots. Each reduction is the same numpy or BLAS kernel a single waveform
uses (float32 sums, BLAS dot products through :func:`row_dots`, pocketfft transforms), so a row of a stack gives bit
for bit the numbers it gives alone.

>>> plan = SpectralPlan.build(4096, 20_000.0, 8, 10.0, (2_000.0, 8_000.0))
>>> plan.hz_per_bin, plan.envelope_slice, plan.grid
(4.8828125, slice(409, 1638, None), 2048)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from fusewatch.core.assets import BearingKinematics


@dataclass(frozen=True)
class SpectralPlan:
    """Index arrays for snapshots of one length and sample rate (whatever their bearing)."""

    hz_per_bin: float
    band_edges: np.ndarray
    bin_index: np.ndarray
    envelope_slice: slice
    grid: int
    floor_slice: slice

    @classmethod
    def build(cls, n: int, sample_rate_hz: float, n_bands: int, band_low_hz: float,
              envelope_band_hz: tuple[float, float]) -> SpectralPlan:
        """The plan of ``n``-sample snapshots at ``sample_rate_hz``.

        >>> plan = SpectralPlan.build(25_600, 25_600.0, 8, 10.0, (2_000.0, 8_000.0))
        >>> plan.band_edges.tolist(), plan.grid, plan.floor_slice
        ([10, 24, 59, 146, 357, 874, 2139, 5233], 8192, slice(1, 500, None))
        """
        bins = n // 2 + 1
        hz_per_bin = sample_rate_hz / n
        edges_hz = np.geomspace(band_low_hz, sample_rate_hz / 2, n_bands + 1)
        band_edges = np.clip((edges_hz / hz_per_bin).astype(int), 1, bins - 1)[:-1]
        envelope_slice, grid = envelope_layout(n, sample_rate_hz, envelope_band_hz)
        env_bins = grid // 2 + 1
        env_hz_per_bin = sample_rate_hz / n  # the base-band envelope spans the same duration as the snapshot
        return cls(
            hz_per_bin=hz_per_bin,
            band_edges=band_edges,
            bin_index=np.arange(bins, dtype=np.float64),
            envelope_slice=envelope_slice,
            grid=grid,
            floor_slice=slice(1, max(2, min(env_bins, int(500 / env_hz_per_bin)))),
        )

    def defect_windows(self, n: int, sample_rate_hz: float, bearing: BearingKinematics, harmonics: int,
                       speed_tolerance: float) -> np.ndarray:
        """``reduceat`` bounds of the envelope-spectrum windows around each harmonic of BPFO, BPFI, BSF and FTF:
        pairs ``(lo, hi)``, so the even-numbered reductions are the windows."""
        env_bins = self.grid // 2 + 1
        env_hz_per_bin = sample_rate_hz / n
        bounds: list[int] = []
        for freq in (bearing.bpfo_hz, bearing.bpfi_hz, bearing.bsf_hz, bearing.ftf_hz):
            for k in range(1, harmonics + 1):
                centre = k * freq / env_hz_per_bin
                width = max(1.0, speed_tolerance * centre)
                lo = min(max(int(centre - width), 1), env_bins - 2)
                bounds += [lo, min(max(int(centre + width) + 1, lo + 1), env_bins - 1)]
        return np.array(bounds)


@dataclass(slots=True)
class SliceArrays:
    """The waveforms of a slice, ``(n,)`` or ``(count, n)``, and the arrays its numbers are computed in: views of a
    :class:`Workspace` for a stack, ``None`` (allocated as needed) for one waveform (see :class:`Workspace`)."""

    samples: np.ndarray  # float32
    centred: np.ndarray | None = None  # float32, like samples
    scratch: np.ndarray | None = None  # float32, like samples
    wide: np.ndarray | None = None  # float64, like samples: the centred waveforms for the FFT, then scratch
    power: np.ndarray | None = None  # float64, (count, n // 2 + 1)
    envelope: np.ndarray | None = None  # float64, (count, grid)
    env_spectra: np.ndarray | None = None  # float64, (count, grid // 2 + 1)


class Workspace:
    """Reusable memory for stacks of waveforms, grown to the largest stack asked for.

    Large arrays allocated afresh for every slice come back from the kernel as new pages, and the page faults (with
    the zeroing of every page) cost as much as the arithmetic: measured, fresh arrays for slices of 4-32 snapshots
    took 0.7-0.9 ms per snapshot against 0.33 in reused memory. One waveform is the other way round: its
    temporaries, allocated as needed, reuse memory freed a moment before and still in the cache, and computing it
    in a workspace was 15 % slower.

    >>> space = Workspace()
    >>> arrays = space.arrays(2, 1_000, 256)
    >>> arrays.samples.shape, arrays.power.shape, arrays.env_spectra.shape, space.nbytes
    ((2, 1000), (2, 501), (2, 129), 57344)
    >>> space.arrays(1, 500, 256).samples.base is arrays.samples.base  # the same memory
    True
    """

    def __init__(self) -> None:
        self._f32 = np.empty(0, dtype=np.float32)
        self._f64 = np.empty(0, dtype=np.float64)

    @property
    def nbytes(self) -> int:
        """The memory held."""
        return self._f32.nbytes + self._f64.nbytes

    def arrays(self, count: int, n: int, grid: int) -> SliceArrays:
        """Views for ``count`` waveforms of ``n`` samples whose envelope grid is ``grid`` (contents undefined)."""
        singles = self._views("_f32", [(count, n)] * 3)
        doubles = self._views("_f64", [(count, n), (count, n // 2 + 1), (count, grid), (count, grid // 2 + 1)])
        return SliceArrays(*singles, *doubles)

    def _views(self, name: str, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Consecutive views of the buffer ``name``, each starting on a 4 KiB boundary of it (a loop that reads one
        array and writes another that starts a few bytes further modulo 4 KiB stalls on its stores: measured, such
        a copy of 25,600 floats took 50 µs instead of 4)."""
        buffer: np.ndarray = getattr(self, name)
        page = 4096 // buffer.itemsize
        sizes = [-(-rows * cols // page) * page for rows, cols in shapes]
        if buffer.size < sum(sizes):
            buffer = np.empty(sum(sizes), dtype=buffer.dtype)
            setattr(self, name, buffer)
        views: list[np.ndarray] = []
        start = 0
        for (rows, cols), size in zip(shapes, sizes, strict=True):
            views.append(buffer[start : start + rows * cols].reshape(rows, cols))
            start += size
        return views


@dataclass(slots=True)
class TimeStatistics:
    """Float32 statistics of each waveform (scalars for one waveform), and the centred waveforms."""

    mean: np.ndarray
    variance: np.ndarray
    peak: np.ndarray
    fourth: np.ndarray  # sum of the centred samples to the 4th power
    third: np.ndarray  # ... to the 3rd power
    centred: np.ndarray


def time_statistics(arrays: SliceArrays) -> TimeStatistics:
    """Mean, variance (of the centred waveform), peak magnitude and the 3rd and 4th power sums of each waveform.

    >>> rows = np.array([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 2.0]], dtype=np.float32)
    >>> stats = time_statistics(SliceArrays(rows))
    >>> stats.mean.tolist(), stats.variance.tolist(), stats.peak.tolist(), stats.third.tolist()
    ([0.0, 0.5], [1.0, 0.75], [1.0, 2.0], [0.0, 3.0])
    >>> time_statistics(SliceArrays(rows[1])).third == stats.third[1]
    np.True_
    """
    rows = arrays.samples
    mean = rows.mean(axis=-1)
    if rows.ndim == 1:  # one waveform (a ufunc is slower to call with out=None)
        peak = np.abs(rows).max()
        centred = rows - mean
        sq = centred * centred
    else:
        peak = np.abs(rows, out=arrays.scratch).max(axis=-1)
        centred = np.subtract(rows, mean[:, None], out=arrays.centred)
        sq = np.multiply(centred, centred, out=arrays.scratch)
    return TimeStatistics(mean, sq.mean(axis=-1), peak, row_dots(sq, sq), row_dots(sq, centred), centred)


def row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.dot(a, b)`` of one vector, or ``[np.dot(a[i], b[i]) for i in rows]`` of a stack in one call (``b`` may be
    one vector for every row): the BLAS dot of each pair, so each value is bit for bit ``np.dot`` of that row
    (``einsum`` and ``a @ b`` sum in another order).

    >>> row_dots(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1.0, 10.0])).tolist()
    [21.0, 43.0]
    """
    if a.ndim == 1:
        return np.dot(a, b)  # type: ignore[no-any-return]
    column = b[:, :, None] if b.ndim == 2 else b[:, None]
    result: np.ndarray = np.matmul(a[:, None, :], column)[:, 0, 0]
    return result


def power_spectrum(centred: np.ndarray, arrays: SliceArrays) -> tuple[np.ndarray, np.ndarray]:
    """The float64 ``rfft`` of each centred waveform and its power (float64: quiet bands of a float32 spectrum
    square into subnormal numbers, which are very slow)."""
    if arrays.wide is None:
        spectrum = scipy.fft.rfft(centred.astype(np.float64), axis=-1)
        power: np.ndarray = spectrum.real**2 + spectrum.imag**2
        return spectrum, power
    np.copyto(arrays.wide, centred)
    spectrum = scipy.fft.rfft(arrays.wide, axis=-1)
    power = np.square(spectrum.real, out=arrays.power)
    power += np.square(spectrum.imag, out=arrays.wide.reshape(-1)[: power.size].reshape(power.shape))
    return spectrum, power


def band_shares(power: np.ndarray, plan: SpectralPlan, n_bands: int) -> tuple[np.ndarray, np.ndarray | np.float64]:
    """Each waveform's share of its total power in each band (``n_bands`` of them) and its spectral centroid (Hz)."""
    if power.ndim == 1:  # one waveform: Python numbers are quicker than 0-d arrays
        one = float(power.sum()) or 1e-12
        shares = np.add.reduceat(power, plan.band_edges)[:n_bands] * (1.0 / one)
        return shares, np.float64(float(np.dot(power, plan.bin_index)) * plan.hz_per_bin / one)
    total = power.sum(axis=1)
    total[total == 0.0] = 1e-12
    shares = np.add.reduceat(power, plan.band_edges, axis=1)[:, :n_bands] * (1.0 / total)[:, None]
    return shares, row_dots(power, plan.bin_index) * plan.hz_per_bin / total


def envelope_layout(n: int, sample_rate_hz: float, band_hz: tuple[float, float]) -> tuple[slice, int]:
    """The spectrum bins of ``band_hz`` (clipped to Nyquist) and the envelope grid length (a power of two).

    >>> envelope_layout(25_600, 25_600.0, (2_000.0, 8_000.0))
    (slice(2000, 8000, None), 8192)
    """
    bins = n // 2 + 1
    hz_per_bin = sample_rate_hz / n
    low, high = (min(int(f / hz_per_bin), bins - 1) for f in band_hz)
    grid = 1 << max(8, math.ceil(math.log2(max(high - low, 2))))
    return slice(low, high), grid


def demodulate(band_spectrum: np.ndarray, grid: int, arrays: SliceArrays | None = None) -> np.ndarray:
    """Magnitude spectrum of the envelope of one band of a waveform, given that band of the waveform's ``rfft``
    (along the last axis: one waveform, or one per row, computed in ``arrays``' memory).

    The band is shifted to base band in the frequency domain and inverse-transformed on a short grid: the
    magnitude of that complex signal is the envelope of the band-passed waveform (Hilbert demodulation). Bin
    ``k`` of the result is ``k`` cycles per snapshot; the scale is ``n / 4`` times the single-sided amplitude.
    """
    if arrays is None or arrays.envelope is None or arrays.env_spectra is None:  # one waveform
        envelope = np.abs(scipy.fft.ifft(band_spectrum, n=grid, axis=-1))
        envelope -= envelope.mean(axis=-1, keepdims=envelope.ndim > 1)
        one: np.ndarray = np.abs(scipy.fft.rfft(envelope, axis=-1))
        return one
    rows = len(band_spectrum)
    envelope = np.abs(scipy.fft.ifft(band_spectrum, n=grid, axis=-1), out=arrays.envelope[:rows])
    envelope -= envelope.mean(axis=-1, keepdims=True)
    stack: np.ndarray = np.abs(scipy.fft.rfft(envelope, axis=-1), out=arrays.env_spectra[:rows])
    return stack


def envelope_floor(env_spectra: np.ndarray, plan: SpectralPlan) -> np.ndarray | np.float64:
    """Each envelope spectrum's floor: its median below 500 Hz (``1e-12`` for a silent waveform)."""
    if env_spectra.ndim == 1:
        return np.float64(np.median(env_spectra[plan.floor_slice]) or 1e-12)
    floor: np.ndarray = np.median(env_spectra[:, plan.floor_slice], axis=1)
    floor[floor == 0.0] = 1e-12
    return floor


def defect_peaks(env_spectra: np.ndarray, windows: np.ndarray, harmonics: int) -> np.ndarray:
    """Each envelope spectrum's largest line in each defect window, harmonics summed: 4 values (one per defect)."""
    peaks = np.maximum.reduceat(env_spectra, windows, axis=-1)[..., ::2]
    summed: np.ndarray = peaks.reshape(*env_spectra.shape[:-1], 4, harmonics).sum(axis=-1)
    return summed
