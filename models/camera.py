"""Camera: a small convolutional autoencoder per asset, trained online on frames judged normal.

The frame is reduced to ``input_size`` (mean pooling), standardised (which removes global lighting changes)
and reconstructed. The score is the mean of the largest 1 % of the squared error map smoothed over 3x3
neighbourhoods, so a small local change (a stain, a hot spot) is not averaged away while pixel noise is;
the error map is the explanation.

Learning is mini-batched: one Adam step per ``batch_size`` learned frames, which keeps the cost per frame low.
Once the model has taken ``warm_steps`` steps it has seen the scene, and it keeps learning from one offered
frame in ``learn_every``, ``learn_delay`` offered frames later (kept meanwhile as small pooled ``uint8``
images): a stain that spreads over days is then compared with a model of the day before, not learned as it
grows; ``forget_pending`` drops the waiting frames when an alert opens. Memory per asset stays bounded: the
model, Adam's state and ``learn_delay / learn_every`` pooled frames (4 KiB each).

Optional settings (the defaults are the simulated plant's): ``depth`` strided layers (a deeper encoder is a
narrower bottleneck), ``normalization="gain"`` (divide by the mean brightness instead of standardising, so
darker regions keep their contrast), ``error="darker"`` (only where the frame is darker than its
reconstruction) and ``error_baseline`` (divide the error map by a running mean of the error maps of learned
frames, so places that are always hard to reconstruct, such as edges, do not dominate the score).

>>> import numpy as np
>>> detector = CameraDetector(seed=0)
>>> frame = np.full((128, 128), 90, dtype=np.uint8)
>>> for _ in range(32):
...     detector.learn_one(frame)
>>> detector.steps, detector.score_one(frame) >= 0.0
(2, True)
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from torch import nn

from models.camera_kernels import learning_step, reconstruct
from models.camera_options import ErrorKind, Normalization

torch.set_num_threads(1)


def prepare_torch() -> None:
    """Make a throwaway Adam optimizer: torch imports its compiler machinery when the first optimizer is made
    (1.5 s here), which a long-running process (a worker) had better pay before its first window than in it."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def top_percent_mean(errors: np.ndarray) -> np.ndarray:
    """The mean of the largest 1 % of each error map of a stack ``(n, S, S)`` (the camera's score).

    >>> top_percent_mean(np.arange(200, dtype=np.float32).reshape(1, 10, 20)).tolist()
    [198.5]
    """
    flat = errors.reshape(len(errors), -1)
    k = max(1, flat.shape[1] // 100)
    top: np.ndarray = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)
    return top


def mean_pool(pixels: np.ndarray, size: int) -> np.ndarray:
    """Mean-pool a 2-D image (or a stack of them) down to ``size`` x ``size`` (integer factor, edges cropped).

    As float32; a stack gives each image exactly what it gives alone.

    >>> mean_pool(np.arange(16, dtype=np.uint8).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    *lead, h, w = pixels.shape
    fy, fx = h // size, w // size
    if fy < 1 or fx < 1:
        raise ValueError(f"frame {w}x{h} is smaller than the model input {size}x{size}")
    rows = pixels[..., : fy * size, : fx * size].reshape(*lead, size, fy, fx * size)
    summed = rows[..., 0, :].astype(np.float32)
    for i in range(1, fy):
        np.add(summed, rows[..., i, :], out=summed, dtype=np.float32)  # in float32, whatever the pixel type
    cols = summed.reshape(*lead, size, size, fx)
    pooled = cols[..., 0].copy()
    for j in range(1, fx):
        pooled += cols[..., j]
    pooled *= 1.0 / (fy * fx)
    return pooled


def explain_peak(error: np.ndarray | None) -> list[tuple[str, float]]:
    """The peak of an error map and its row and column (0-1): what a camera model says about the frame it scored.

    >>> explain_peak(np.array([[0.0, 0.0], [0.0, 2.5]]))
    [('peak_error', 2.5), ('peak_row', 0.5), ('peak_col', 0.5)]
    """
    if error is None:
        return []
    row, col = np.unravel_index(int(np.argmax(error)), error.shape)
    return [
        ("peak_error", round(float(error[row, col]), 4)),
        ("peak_row", round(int(row) / error.shape[0], 3)),
        ("peak_col", round(int(col) / error.shape[1], 3)),
    ]


_GAIN_SCALE = 3.0  # relative brightness x 3: a normal cell's spread is then about 0.6
_BASELINE_RATE = 0.05  # weight of each learned batch in the running mean error map
_BASELINE_FLOOR = 0.1  # the error map is divided by baseline + 10 % of its mean (no blow-up where it is ~0)


def _standardize(pooled: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread (plus one grey level, so a flat dark frame is not blown up): removes lighting.

    Per image along the last two axes (a stack gives each image exactly what it gives alone).
    """
    centred = pooled - pooled.mean(axis=(-2, -1), keepdims=True)
    flat = centred.reshape(*centred.shape[:-2], 1, -1)
    spread = np.sqrt((flat @ flat.swapaxes(-1, -2)) / flat.shape[-1])  # the same float32 dot product as np.dot
    prepared: np.ndarray = centred / (spread + 1.0)
    return prepared


def _gain_normalize(pooled: np.ndarray) -> np.ndarray:
    """Brightness relative to the frame's mean (plus one grey level), centred and scaled: removes the gain only.

    >>> _gain_normalize(np.array([[49.0, 149.0]], dtype=np.float32)).tolist()
    [[-1.5, 1.5]]
    """
    prepared: np.ndarray = (pooled / (pooled.mean(axis=(-2, -1), keepdims=True) + 1.0) - 1.0) * _GAIN_SCALE
    return prepared.astype(np.float32, copy=False)


def _smoothed_error(reconstruction: np.ndarray, prepared: np.ndarray, error: ErrorKind) -> np.ndarray:
    """The error map of one frame (or a batch, along the last two axes), averaged over 3x3 neighbourhoods.

    ``squared``: the squared error, then averaged. ``darker``: the residual averaged first (so texture that
    is darker here and brighter there cancels, while a dark crack or region does not), then only where the
    frame is darker than its reconstruction, squared.
    """
    size = (1,) * (prepared.ndim - 2) + (3, 3)
    if error == "squared":
        smoothed: np.ndarray = uniform_filter((reconstruction - prepared) ** 2, size=size, mode="nearest")
        return smoothed
    darker = np.maximum(uniform_filter(reconstruction - prepared, size=size, mode="nearest"), 0.0)
    squared: np.ndarray = darker**2
    return squared


class FrameAutoencoder(nn.Module):
    """``depth`` strided 4x4 convolutions down, as many non-overlapping 2x2 transposed convolutions up.

    Channels are ``channels`` after the first layer and twice that after the others: for a 64 x 64 frame,
    depth 2 keeps 16 channels of 16 x 16 (as many numbers as pixels), depth 4 16 channels of 4 x 4, a much
    narrower bottleneck. Non-overlapping transposed convolutions are about twice as fast as the usual 4x4 ones
    on a CPU, for the same reconstruction of these small scenes.

    >>> [sum(p.numel() for p in FrameAutoencoder(depth=depth).parameters()) for depth in (2, 4)]
    [2753, 13057]
    """

    def __init__(self, channels: int = 8, depth: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        widths = [channels if layer == 0 else 2 * channels for layer in range(depth)]
        down: list[nn.Module] = []
        for before, after in zip([1, *widths[:-1]], widths, strict=True):
            down += [nn.Conv2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
        up: list[nn.Module] = []
        for before, after in zip(widths[::-1], [*widths[-2::-1], 1], strict=True):
            up += [nn.ConvTranspose2d(before, after, 2, stride=2), nn.ReLU()]
        self.encoder = nn.Sequential(*down)
        self.decoder = nn.Sequential(*up[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))  # type: ignore[no-any-return]


class CameraDetector:
    """Online reconstruction-error detector for grayscale frames of one camera."""

    def __init__(
        self,
        input_size: int = 64,
        batch_size: int = 16,
        learning_rate: float = 3e-3,
        warm_steps: int = 100,
        learn_every: int = 8,
        learn_delay: int = 0,
        seed: int = 0,
        depth: int = 2,
        normalization: Normalization = "standardize",
        error: ErrorKind = "squared",
        error_baseline: bool = False,
    ) -> None:
        if input_size % (1 << depth):
            raise ValueError(f"input_size {input_size} is not a multiple of 2**depth = {1 << depth}")
        self.input_size = input_size
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.warm_steps = warm_steps
        self.learn_every = learn_every
        self.seed = seed
        self.depth = depth
        self.normalization: Normalization = normalization
        self.error: ErrorKind = error
        self.error_baseline = error_baseline
        torch.manual_seed(seed)
        self.model = FrameAutoencoder(depth=depth)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.learn_delay = learn_delay
        self._buffer: list[np.ndarray] = []
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self.steps = 0
        self._offered = 0
        self.baseline_map: np.ndarray | None = None
        self.last_error_map: np.ndarray | None = None
        self._last_input: np.ndarray | None = None
        self._last_prepared: np.ndarray | None = None
        self._last_pooled: np.ndarray | None = None

    def _normalize(self, pooled: np.ndarray) -> np.ndarray:
        return _gain_normalize(pooled) if self.normalization == "gain" else _standardize(pooled)

    def _pooled(self, frame: np.ndarray) -> np.ndarray:
        """The frame pooled to the model's input size (cached: scoring and learning see the same frame)."""
        if frame is not self._last_input or self._last_pooled is None:
            self._last_pooled = mean_pool(np.asarray(frame), self.input_size)
            self._last_input, self._last_prepared = frame, None
        return self._last_pooled

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        pooled = self._pooled(frame)
        if self._last_prepared is None:
            self._last_prepared = self._normalize(pooled)
        return self._last_prepared

    def learn_one(self, x: np.ndarray) -> None:
        """Learn a normal frame: at once while warming up, then one in ``learn_every``, ``learn_delay`` later."""
        for batch in self._due_batches(self._offer(x)):
            self._step(batch)

    def _offer(self, x: np.ndarray) -> list[np.ndarray]:
        """Count an offered frame; the prepared frames to learn now (it, or waiting frames whose time has come)."""
        self._offered += 1
        if self.steps < self.warm_steps:
            return [self._prepare(x)]
        if self._offered % self.learn_every == 0:
            self._pending.append((self._offered, np.round(self._pooled(x)).astype(np.uint8)))
        due = []
        while self._pending and self._pending[0][0] <= self._offered - self.learn_delay:
            due.append(self._normalize(self._pending.popleft()[1].astype(np.float32)))
        return due

    def forget_pending(self) -> None:
        """Drop the frames still waiting to be learned (something abnormal was found meanwhile)."""
        self._pending.clear()

    def _due_batches(self, prepared: list[np.ndarray]) -> list[np.ndarray]:
        """Add frames to the mini-batch; the full mini-batches ``(batch_size, S, S)`` now due for an Adam step."""
        batches = []
        for frame in prepared:
            self._buffer.append(frame)
            if len(self._buffer) >= self.batch_size:
                batches.append(np.stack(self._buffer))
                self._buffer.clear()
        return batches

    def _step(self, batch: np.ndarray) -> None:
        """One Adam step on a mini-batch, then the baseline update: the batched step of
        :mod:`models.camera_kernels` for one model, so a detector learns the same alone or in a batch."""
        reconstruction = learning_step([self._parameters()], [self.optimizer], batch[None])[0]
        self.steps += 1
        if self.error_baseline:
            self._update_baseline(reconstruction, batch)

    def _update_baseline(self, reconstructions: np.ndarray, batch: np.ndarray) -> None:
        """Fold the mean error map of a learned batch into the running baseline (an exponential mean)."""
        mean_map = _smoothed_error(reconstructions, batch, self.error).mean(axis=0)
        if self.baseline_map is None:
            self.baseline_map = mean_map
        else:
            self.baseline_map += _BASELINE_RATE * (mean_map - self.baseline_map)

    def _parameters(self) -> list[torch.Tensor]:
        """The model's parameters in ``model.parameters()`` order (the optimizer's list of them: no module walk)."""
        params: list[torch.Tensor] = self.optimizer.param_groups[0]["params"]
        return params

    def heat_map(self, x: np.ndarray) -> np.ndarray:
        """The ``input_size`` x ``input_size`` reconstruction-error map of a frame, as :meth:`score_one` sees it.

        The error (``squared`` or ``darker``, see the module) averaged over 3x3 neighbourhoods, divided by the
        running baseline when ``error_baseline`` is set; also kept as ``last_error_map`` for :meth:`explain`.
        The reconstruction is :mod:`models.camera_kernels`' batched arithmetic with a batch of one, as in
        :func:`models.camera_batch.score_frames` (faster than the convolution modules, even for one frame).
        """
        prepared = self._prepare(x)
        reconstruction = reconstruct([self._parameters()], prepared[None, None])[0, 0]
        error = self.relative_to_baseline(_smoothed_error(reconstruction, prepared, self.error))
        self.last_error_map = error
        return error

    def relative_to_baseline(self, error: np.ndarray) -> np.ndarray:
        """An error map divided by the running baseline when ``error_baseline`` is set (and one is learned)."""
        baseline = self.baseline_map
        if not self.error_baseline or baseline is None:
            return error
        relative: np.ndarray = error / (baseline + _BASELINE_FLOOR * float(baseline.mean()))
        return relative

    def score_one(self, x: np.ndarray) -> float:
        """Mean of the top 1 % of the :meth:`heat_map` (by default the squared error averaged over 3x3).

        The neighbourhood average keeps spatially coherent errors (a stain, a hot spot) and damps pixel noise,
        which grows at night: on the simulator it separates a leak stain from normal frames about 2.5 times
        better (in standard deviations) than the raw per-pixel error.
        """
        return float(top_percent_mean(self.heat_map(x)[None])[0])

    def explain(self) -> list[tuple[str, float]]:
        """Where the last scored frame was worst reconstructed: peak error and its row/column (0-1)."""
        return explain_peak(self.last_error_map)

    def start_from(self, weights: dict[str, np.ndarray], adapt_steps: int) -> None:
        """Start from another model's weights (a fleet's model of this camera kind), with ``adapt_steps`` steps
        left of the warm phase: the model adapts to its own scene at once, then learns as a warm model does.

        Raises ``ValueError`` when the weights are not of this model's architecture.
        """
        own = self.model.state_dict()
        if set(weights) != set(own) or any(tuple(weights[k].shape) != tuple(own[k].shape) for k in own):
            raise ValueError(f"weights of another architecture (expected {', '.join(sorted(own))} of depth"
                             f" {self.depth})")
        self.model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in weights.items()})
        self.steps = max(self.warm_steps - adapt_steps, 0)

    def weights(self) -> dict[str, np.ndarray]:
        """The model's weights as arrays (what a bundle stores)."""
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        buffer = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
        state["model"] = state["optimizer"] = state["_last_input"] = state["_last_prepared"] = None
        state["_last_pooled"] = None
        state["_torch_state"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_torch_state")
        for key, default in (("depth", 2), ("normalization", "standardize"), ("error", "squared"),
                             ("error_baseline", False), ("baseline_map", None)):
            state.setdefault(key, default)
        self.__dict__.update(state)
        self.model = FrameAutoencoder(depth=self.depth)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)
        saved = torch.load(io.BytesIO(blob), weights_only=True)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
