"""Camera: a per-pixel background of the scene, each pixel compared with its own history.

The frame is pooled to ``input_size`` and standardised (which removes global lighting), as the autoencoder's is.
Each pixel keeps an exponential running mean and variance of its normalised value over the frames learned; a
frame's error map is its squared z-score per pixel averaged over 3x3 neighbourhoods, and the score is the mean
of the largest 1 % of the map, as for the autoencoder (:mod:`models.camera`).

Why beside the autoencoder: an autoencoder generalises, so it reconstructs an oil stain about as well as the
clean scene, and its error does not grow as the stain spreads over days (docs/models.md, "Why the camera misses
slow leaks"). A pixel's own mean and spread do not generalise: a stain that darkens the skid is a deviation until
the background has learned it, and the background learns it slowly. It remembers ``memory_frames`` learned
frames (an exponential mean: each learned frame weighs ``1 / memory_frames``); it learns the first
``warm_frames`` offered frames at once (a plain running mean until the memory is reached), then one offered
frame in ``learn_every``, ``learn_delay`` offered frames later (kept meanwhile as small pooled ``uint8``
images), so that the scene of today is compared with that of the days before. ``forget_pending`` drops the
waiting frames when an alert opens. Memory per asset: two ``input_size`` x ``input_size`` float32 maps and
``learn_delay / learn_every`` pooled frames; no torch.

>>> import numpy as np
>>> background = PixelBackground(input_size=8, warm_frames=4)
>>> rng = np.random.default_rng(0)
>>> scene = rng.integers(60, 200, size=(16, 16)).astype(np.uint8)
>>> for _ in range(50):
...     background.learn_one(np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8))
>>> stained = scene.copy()
>>> stained[8:12, 4:8] = 20
>>> background.score_one(stained) > 10 * background.score_one(scene)
True
>>> [name for name, _ in background.explain()]
['peak_error', 'peak_row', 'peak_col']
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy.ndimage import uniform_filter

from models.camera import _standardize, explain_peak, mean_pool, top_percent_mean

VARIANCE_FLOOR = 0.01
"""Added to every pixel's variance (in standardised units): a pixel that never changed does not blow up."""
CLIP_SIGMAS = 4.0
"""Once warm, a learned frame moves a pixel's statistics by at most this many of its standard deviations: a
person passing in front of the lens, learned as a normal frame (the smoothed score does not flag one frame),
does not inflate the variance of the pixels it covered for days."""


class PixelBackground:
    """Online per-pixel background model of one camera (the camera model ``background``)."""

    def __init__(
        self,
        input_size: int = 64,
        memory_frames: float = 540.0,
        warm_frames: int = 720,
        learn_every: int = 8,
        learn_delay: int = 0,
    ) -> None:
        if memory_frames < 1:
            raise ValueError(f"memory_frames must be at least 1, not {memory_frames}")
        self.input_size = input_size
        self.memory_frames = memory_frames
        self.warm_frames = warm_frames
        self.learn_every = learn_every
        self.learn_delay = learn_delay
        self.mean = np.zeros((input_size, input_size), np.float32)
        self.variance = np.zeros((input_size, input_size), np.float32)
        self.learned = 0
        self._offered = 0
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self.last_error_map: np.ndarray | None = None
        self._last_input: np.ndarray | None = None
        self._last_pooled: np.ndarray | None = None

    def _pooled(self, frame: np.ndarray) -> np.ndarray:
        """The frame pooled to the input size (cached: scoring and learning see the same frame)."""
        if frame is not self._last_input or self._last_pooled is None:
            self._last_pooled = mean_pool(np.asarray(frame), self.input_size)
            self._last_input = frame
        return self._last_pooled

    def learn_one(self, x: np.ndarray) -> None:
        """Learn a normal frame: at once while warming up, then one in ``learn_every``, ``learn_delay`` later."""
        self._offered += 1
        if self._offered <= self.warm_frames:
            self._learn(_standardize(self._pooled(x)))
            return
        if self._offered % self.learn_every == 0:
            self._pending.append((self._offered, np.round(self._pooled(x)).astype(np.uint8)))
        while self._pending and self._pending[0][0] <= self._offered - self.learn_delay:
            self._learn(_standardize(self._pending.popleft()[1].astype(np.float32)))

    def _learn(self, prepared: np.ndarray) -> None:
        """Fold one normalised frame into each pixel's running mean and variance (West's update; deviations
        clipped at :data:`CLIP_SIGMAS` once the warm frames are learned)."""
        self.learned += 1
        rate = np.float32(1.0 / min(self.learned, self.memory_frames))
        before = prepared - self.mean
        if self.learned > self.warm_frames:
            limit = CLIP_SIGMAS * np.sqrt(self.variance + VARIANCE_FLOOR)
            before = np.clip(before, -limit, limit)
            prepared = self.mean + before
        self.mean += rate * before
        self.variance += rate * (before * (prepared - self.mean) - self.variance)

    def forget_pending(self) -> None:
        """Drop the frames still waiting to be learned (something abnormal was found meanwhile)."""
        self._pending.clear()

    def heat_map(self, x: np.ndarray) -> np.ndarray:
        """The squared z-score of each pixel of the pooled, standardised frame, averaged over 3x3 neighbourhoods
        (zero everywhere until two frames are learned); also kept as ``last_error_map`` for :meth:`explain`."""
        if self.learned < 2:
            error = np.zeros((self.input_size, self.input_size), np.float32)
        else:
            squared = (_standardize(self._pooled(x)) - self.mean) ** 2 / (self.variance + VARIANCE_FLOOR)
            error = uniform_filter(squared, size=3, mode="nearest")
        self.last_error_map = error
        return error

    def score_one(self, x: np.ndarray) -> float:
        """Mean of the top 1 % of the :meth:`heat_map`."""
        return float(top_percent_mean(self.heat_map(x)[None])[0])

    def explain(self) -> list[tuple[str, float]]:
        """Where the last scored frame was furthest from the background: peak error and its row/column (0-1)."""
        return explain_peak(self.last_error_map)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_last_input"] = state["_last_pooled"] = None
        return state
