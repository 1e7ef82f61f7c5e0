"""Camera of the simulated plant: a static machine scene, lighting, sensor noise, occlusions and fault overlays.

The scene of each asset (wall, floor, skid, casing, shaft, pipes, textures) is drawn once at start-up. A frame
is that scene under the lighting of its time of day (artificial light plus daylight through a window, slow cloud
drift, small flicker), with sensor noise that grows as the exposure gain rises at night, rarely a person or a
cart passing in front of the lens, and the visible part of a fault:

* ``leak`` (pumps): an oil stain creeping down from the shaft seal and spreading over the skid and floor; its
  extent grows with the square root of the severity, so it is visible early;
* ``winding`` (motors): a bright heat spot on the motor frame that appears only above severity 0.5.

Bearing faults are invisible.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from connectors.sources.simulator.vibration import GaussianPool
from fusewatch.core.events import FaultType
from fusewatch.core.timeutil import NS_PER_DAY, NS_PER_HOUR

HEAT_ONSET = 0.5
"""Severity above which a winding fault shows a heat spot."""
_EMPTY = (slice(0, 0), slice(0, 0))


@dataclass(frozen=True)
class Scene:
    """The static picture of one asset and the masks of what can change on it (all ``size`` x ``size``).

    Attributes
    ----------
    base, window
        The scene under artificial light, and the extra daylight pattern at full sun (DN, float32).
    stain_threshold, stain_box
        Pumps: the severity extent (``sqrt(severity)``) at which each pixel gets oily, and the box where it can.
    heat
        Motors: the heat-spot pattern on the motor frame (peak 1).
    seal_region
        Pumps: the region below the shaft seal where oil runs and pools.
    """

    size: int
    base: np.ndarray
    window: np.ndarray
    noise_sigma: float
    stain_threshold: np.ndarray | None
    stain_box: tuple[slice, slice]
    heat: np.ndarray | None
    seal_region: tuple[slice, slice]


class _Canvas:
    """Soft-edged drawing primitives on normalised coordinates (x right, y down, both in [0, 1])."""

    def __init__(self, size: int) -> None:
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.yy, self.xx = np.meshgrid(coords, coords, indexing="ij")
        self.edge = 1.0 / size
        self.image = np.zeros((size, size), dtype=np.float32)

    def box(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        def ramp(lo: float, hi: float, v: np.ndarray) -> np.ndarray:
            return np.asarray(np.clip(np.minimum(v - lo, hi - v) / self.edge + 0.5, 0.0, 1.0))

        coverage: np.ndarray = ramp(x0, x1, self.xx) * ramp(y0, y1, self.yy)
        return coverage

    def disk(self, cx: float, cy: float, radius: float) -> np.ndarray:
        distance = np.hypot(self.xx - cx, self.yy - cy)
        return np.asarray(np.clip((radius - distance) / self.edge + 0.5, 0.0, 1.0))

    def paint(self, mask: np.ndarray, value: np.ndarray | float) -> None:
        self.image += mask * (value - self.image)


def _texture(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = np.asarray(gaussian_filter(rng.standard_normal((size, size)), sigma=sigma, mode="wrap"))
    return np.asarray(field / (field.std() + 1e-9), dtype=np.float32)


def make_scene(rng: np.random.Generator, kind: str, size: int) -> Scene:
    """Draw the static scene of a ``kind`` asset ("pump" or "motor") with per-asset variations."""
    cv = _Canvas(size)
    dx, dy = (float(v) for v in rng.uniform(-0.03, 0.03, size=2))
    tone = float(rng.uniform(0.9, 1.1))
    horizon = 0.70 + dy
    cv.image[:] = (112.0 + 14.0 * (cv.yy - 0.35) + 5.0 * _texture(rng, size, size / 20)) * tone
    cv.paint(cv.box(0.0, 1.0, 0.11 + dy, 0.14 + dy), 92.0)  # conduit on the wall
    floor = 78.0 + 4.0 * _texture(rng, size, size / 40) - 7.0 * (np.abs(((cv.xx - 0.5) * 8.0 + 0.5) % 1.0 - 0.5) < 0.03)
    cv.paint(cv.box(0.0, 1.0, horizon, 1.0), floor * tone)
    cv.paint(cv.box(0.06 + dx, 0.94 + dx, 0.64 + dy, horizon + 0.02), 58.0)  # skid
    cv.paint(cv.box(0.06 + dx, 0.94 + dx, 0.64 + dy, 0.655 + dy), 84.0)
    fins = 9.0 * np.sign(np.sin(cv.yy * (2.0 * math.pi / 0.035)))
    stain: np.ndarray | None = None
    heat: np.ndarray | None = None
    stain_box = seal_region = _EMPTY
    if kind == "pump":
        seal = _draw_pump(cv, dx, dy, fins)
        stain, stain_box = _stain_field(rng, cv, seal, horizon)
        seal_region = _region(cv, seal[0] - 0.06, seal[0] + 0.06, seal[1], horizon + 0.04)
    else:
        heat = _draw_motor(cv, dx, dy, fins)
    cv.image += 2.5 * _texture(rng, size, 0.7)  # fine surface grain
    return Scene(
        size=size,
        base=np.clip(cv.image, 0.0, 255.0),
        window=_window_light(cv, float(rng.uniform(-1.0, 1.0))),
        noise_sigma=float(rng.uniform(1.5, 2.5)),
        stain_threshold=stain,
        stain_box=stain_box,
        heat=heat,
        seal_region=seal_region,
    )


def _region(cv: _Canvas, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    size = cv.image.shape[0]
    rows = slice(max(0, int(y0 * size)), min(size, math.ceil(y1 * size)))
    cols = slice(max(0, int(x0 * size)), min(size, math.ceil(x1 * size)))
    return rows, cols


def _shaded_disk(cv: _Canvas, cx: float, cy: float, radius: float, value: float) -> None:
    shade = 1.0 + 0.18 * ((cx - cv.xx) + (cy - cv.yy)) / radius
    cv.paint(cv.disk(cx, cy, radius), value * shade)


def _pipe(cv: _Canvas, x0: float, x1: float, y0: float, y1: float, value: float) -> None:
    centre = (x0 + x1) / 2.0
    shade = 1.0 + 0.25 * (1.0 - np.abs(cv.xx - centre) / ((x1 - x0) / 2.0))
    cv.paint(cv.box(x0, x1, y0, y1), value * shade)


def _draw_pump(cv: _Canvas, dx: float, dy: float, fins: np.ndarray) -> tuple[float, float]:
    """Draw a motor-driven centrifugal pump; return the position of the shaft seal."""
    cv.paint(cv.box(0.05 + dx, 0.09 + dx, 0.36 + dy, 0.62 + dy), 95.0)  # fan cowl of the driver
    cv.paint(cv.box(0.09 + dx, 0.42 + dx, 0.34 + dy, 0.64 + dy), 112.0 + fins)  # driver motor
    cv.paint(cv.box(0.42 + dx, 0.52 + dx, 0.44 + dy, 0.58 + dy), 175.0)  # coupling guard
    cv.paint(cv.box(0.52 + dx, 0.59 + dx, 0.46 + dy, 0.56 + dy), 132.0)  # bearing frame and seal
    _pipe(cv, 0.68 + dx, 0.76 + dx, 0.0, 0.36 + dy, 118.0)  # discharge pipe
    cv.paint(cv.box(0.66 + dx, 0.78 + dx, 0.31 + dy, 0.345 + dy), 150.0)  # flange
    _shaded_disk(cv, 0.72 + dx, 0.49 + dy, 0.14, 142.0)  # volute casing
    cv.paint(cv.box(0.63 + dx, 0.82 + dx, 0.60 + dy, 0.645 + dy), 100.0)  # pump feet
    return 0.585 + dx, 0.545 + dy


def _draw_motor(cv: _Canvas, dx: float, dy: float, fins: np.ndarray) -> np.ndarray:
    """Draw a motor driving a blower; return the heat-spot pattern on the motor frame (peak 1)."""
    grille = 88.0 + 10.0 * np.sign(np.sin(cv.xx * (2.0 * math.pi / 0.02)))
    cv.paint(cv.box(0.08 + dx, 0.14 + dx, 0.33 + dy, 0.61 + dy), grille)  # fan cowl
    body = cv.box(0.14 + dx, 0.58 + dx, 0.30 + dy, 0.64 + dy)
    cv.paint(body, 106.0 + fins)
    cv.paint(cv.box(0.30 + dx, 0.42 + dx, 0.22 + dy, 0.30 + dy), 120.0)  # terminal box
    cv.paint(cv.box(0.345 + dx, 0.375 + dx, 0.0, 0.22 + dy), 70.0)  # cable conduit
    cv.paint(cv.box(0.20 + dx, 0.27 + dx, 0.40 + dy, 0.46 + dy), 190.0)  # name plate
    cv.paint(cv.box(0.58 + dx, 0.63 + dx, 0.36 + dy, 0.60 + dy), 124.0)  # end shield
    cv.paint(cv.box(0.63 + dx, 0.71 + dx, 0.44 + dy, 0.56 + dy), 175.0)  # coupling guard
    _pipe(cv, 0.78 + dx, 0.88 + dx, 0.0, 0.36 + dy, 122.0)  # blower outlet duct
    _shaded_disk(cv, 0.83 + dx, 0.47 + dy, 0.12, 138.0)  # blower
    heat = np.exp(-(((cv.xx - 0.40 - dx) / 0.07) ** 2) - ((cv.yy - 0.50 - dy) / 0.05) ** 2) * body
    return np.asarray(heat, dtype=np.float32)


def _window_light(cv: _Canvas, direction: float) -> np.ndarray:
    """Daylight pattern (DN at full sun): a soft gradient from the window side."""
    ramp = 0.5 + 0.5 * direction * (1.0 - 2.0 * cv.xx)
    return (38.0 * ramp * (1.0 - 0.4 * cv.yy)).astype(np.float32)


def _stain_field(
    rng: np.random.Generator, cv: _Canvas, seal: tuple[float, float], horizon: float
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Severity-extent threshold map of the oil stain: 0 at the seal, 1 at the edge of the final puddle."""
    sx, sy = seal
    trail = 0.3 * np.clip((cv.yy - sy) / (horizon - sy), 0.0, 1.0) + np.abs(cv.xx - sx) / 0.025
    trail = np.where((cv.yy >= sy - 0.01) & (cv.yy <= horizon + 0.01), trail, 9.0)
    puddle = 0.2 + 0.8 * np.hypot((cv.xx - sx) / 0.24, (cv.yy - horizon - 0.01) / 0.07)
    field = np.minimum(trail, puddle) + 0.06 * _texture(rng, cv.image.shape[0], 1.5)
    box = _region(cv, sx - 0.28, sx + 0.28, sy - 0.02, horizon + 0.1)
    return field.astype(np.float32), box


class CameraRenderer:
    """Render and encode the frames of one asset from its own random stream.

    Parameters
    ----------
    scene
        The asset's static scene.
    rng
        The asset's camera stream (flicker, clouds, noise, occlusions).
    occlusion_probability
        Chance that a frame has a person or an object in front of the machine.
    quality
        JPEG quality.
    """

    def __init__(
        self, scene: Scene, rng: np.random.Generator, occlusion_probability: float = 0.003, quality: int = 90
    ) -> None:
        self.scene = scene
        self.occlusion_probability = occlusion_probability
        self.quality = quality
        self._rng = rng
        self._cloud = 0.0
        self._n = scene.size * scene.size
        self._noise = GaussianPool(rng, self._n)
        self._cv = _Canvas(scene.size)

    def pixels(self, ts_ns: int, severity: float = 0.0, fault: FaultType | None = None) -> np.ndarray:
        """Return the ``uint8`` grayscale image of time ``ts_ns`` with ``fault`` at ``severity``."""
        scene, rng = self.scene, self._rng
        daylight = self._daylight(ts_ns)
        self._cloud = 0.97 * self._cloud + 0.06 * float(rng.standard_normal())
        sun = daylight * min(1.0, max(0.3, 0.85 + self._cloud))
        gain = (0.55 + 0.45 * sun) * (1.0 + 0.012 * float(rng.standard_normal()))
        image = scene.base * np.float32(gain)
        image += np.float32(sun) * scene.window
        if fault == "leak" and severity > 0.0 and scene.stain_threshold is not None:
            rows, cols = scene.stain_box
            extent = math.sqrt(severity)
            stain = np.clip((extent - scene.stain_threshold[rows, cols]) / 0.05, 0.0, 1.0)
            image[rows, cols] *= 1.0 - 0.45 * stain
        if fault == "winding" and severity > HEAT_ONSET and scene.heat is not None:
            image += np.float32(90.0 * ((severity - HEAT_ONSET) / (1.0 - HEAT_ONSET)) ** 0.8 * gain) * scene.heat
        image += self._sensor_noise(scene.noise_sigma * (1.0 + 1.5 * (1.0 - sun)))
        if float(rng.random()) < self.occlusion_probability:
            self._occlude(image)
        return np.clip(image, 0.0, 255.0).astype(np.uint8)

    def frame(self, ts_ns: int, severity: float = 0.0, fault: FaultType | None = None) -> bytes:
        """Return the JPEG bytes of the frame of time ``ts_ns``."""
        return encode_jpeg(self.pixels(ts_ns, severity, fault), self.quality)

    @staticmethod
    def _daylight(ts_ns: int) -> float:
        hour = (ts_ns % NS_PER_DAY) / NS_PER_HOUR
        return float(max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0)) ** 0.8)

    def _sensor_noise(self, sigma: float) -> np.ndarray:
        """Gaussian sensor noise of standard deviation ``sigma``."""
        return self._noise.draw(sigma, np.empty(self._n, dtype=np.float32)).reshape(self.scene.size, self.scene.size)

    def _occlude(self, image: np.ndarray) -> None:
        rng, cv = self._rng, self._cv
        cx = float(rng.uniform(0.1, 0.9))
        if float(rng.random()) < 0.7:  # a person walking past, hi-vis vest stripe
            k = float(rng.uniform(0.9, 1.3))
            top = float(rng.uniform(0.05, 0.2))
            hip = top + 0.5 * k
            body = np.maximum.reduce(
                [
                    cv.disk(cx, top + 0.06 * k, 0.06 * k),
                    cv.box(cx - 0.09 * k, cx + 0.09 * k, top + 0.12 * k, hip),
                    cv.box(cx - 0.08 * k, cx - 0.01 * k, hip, 1.0),
                    cv.box(cx + 0.01 * k, cx + 0.08 * k, hip, 1.0),
                ]
            )
            stripe = cv.box(cx - 0.09 * k, cx + 0.09 * k, top + 0.3 * k, top + 0.34 * k)
            image += body * (float(rng.uniform(35.0, 70.0)) - image)
            image += stripe * (210.0 - image)
        else:  # a cart or a pallet
            mask = cv.box(cx - 0.2, cx + 0.2, float(rng.uniform(0.35, 0.55)), 1.0)
            image += mask * (float(rng.uniform(60.0, 100.0)) - image)


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """Encode a 2-D ``uint8`` array as a grayscale JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
