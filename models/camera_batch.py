"""Many cameras' frames at once: batched scoring and learning of :class:`~models.camera.CameraDetector` s.

The detectors of one architecture (``input_size``, ``depth``) run as one batched pass of
:mod:`models.camera_kernels` (stacked weights, each layer one batched matrix product), in chunks that keep the
stacked weights and activations in the CPU caches. Frames are pooled and normalised together too.

:func:`score_frames` gives each detector exactly what its own ``score_one`` gives (score, error map, caches),
bit for bit: ``score_one`` is the same arithmetic with a batch of one; :func:`heat_maps` gives the error maps
alone. The measured figures are in ``docs/models.md`` (Batched scoring).

:func:`learn_frames` offers each frame to its detector as ``learn_one`` does; the Adam steps that fall due run as
one batched forward and backward pass and one stacked Adam update (``torch.optim.Adam``'s, operation for
operation), written back into each detector's model and optimizer. It does not depend on how the frames are
batched (bit for bit); against ``learn_one``, whose gradients come from the convolution modules, it agrees within
float32 rounding of the gradients.

>>> from models.camera import CameraDetector
>>> detectors = [CameraDetector(seed=seed) for seed in range(3)]
>>> frames = [np.full((128, 128), 60 + 40 * seed, dtype=np.uint8) for seed in range(3)]
>>> score_frames(detectors, frames) == [CameraDetector(seed=s).score_one(f) for s, f in enumerate(frames)]
True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from models.camera import (
    CameraDetector,
    _gain_normalize,
    _smoothed_error,
    _standardize,
    mean_pool,
    top_percent_mean,
)
from models.camera_kernels import adam_settings, learning_step, reconstruct

_CHUNK = 64  # detectors per batched pass (measured: 32 to 128 alike, 16 and fewer slower)
_TRAIN_CHUNK = 8  # detectors per batched training step of 16 frames each (more spill the CPU caches)


def _architecture(detector: CameraDetector) -> tuple[int, int]:
    return detector.input_size, detector.depth


def _groups(detectors: Sequence[CameraDetector]) -> Iterator[list[int]]:
    """Positions of the detectors of one architecture, in chunks of at most ``_CHUNK``."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for position, detector in enumerate(detectors):
        groups[_architecture(detector)].append(position)
    for positions in groups.values():
        for first in range(0, len(positions), _CHUNK):
            yield positions[first:first + _CHUNK]


def _check(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> None:
    """Every frame can be scored by its detector (checked before anything changes)."""
    if len(detectors) != len(frames):
        raise ValueError(f"{len(detectors)} detectors but {len(frames)} frames")
    for position, (detector, frame) in enumerate(zip(detectors, frames, strict=True)):
        shape = np.shape(frame)
        size = detector.input_size
        if len(shape) != 2:
            raise ValueError(f"frame {position} has shape {shape}: not a 2-D grayscale image")
        if shape[0] < size or shape[1] < size:
            raise ValueError(f"frame {position}: {shape[1]}x{shape[0]} is smaller than the model input {size}x{size}")


def _prepare(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each frame pooled and normalised as its detector's ``_prepare`` does, with the same caches left behind.

    Frames not cached are pooled together (per shape and type), then normalised together (per setting).
    """
    pooled: list[np.ndarray | None] = []
    prepared: list[np.ndarray | None] = []
    to_pool: dict[tuple[tuple[int, ...], np.dtype[np.generic], int], list[int]] = defaultdict(list)
    for position, (detector, frame) in enumerate(zip(detectors, frames, strict=True)):
        if frame is detector._last_input and detector._last_pooled is not None:
            pooled.append(detector._last_pooled)
            prepared.append(detector._last_prepared)
        else:
            pooled.append(None)
            prepared.append(None)
            pixels = np.asarray(frame)
            to_pool[(pixels.shape, pixels.dtype, detector.input_size)].append(position)
    for (_, _, size), positions in to_pool.items():
        batch = mean_pool(np.stack([np.asarray(frames[p]) for p in positions]), size)
        for row, position in enumerate(positions):
            pooled[position] = image = batch[row]
            detector = detectors[position]
            detector._last_input, detector._last_pooled, detector._last_prepared = frames[position], image, None
    to_normalize: dict[tuple[str, int], list[int]] = defaultdict(list)
    for position, detector in enumerate(detectors):
        if prepared[position] is None:
            to_normalize[(detector.normalization, detector.input_size)].append(position)
    for (normalization, _), positions in to_normalize.items():
        stacked = np.stack([pooled[p] for p in positions])  # type: ignore[misc]
        batch = _gain_normalize(stacked) if normalization == "gain" else _standardize(stacked)
        for row, position in enumerate(positions):
            prepared[position] = image = batch[row]
            detector = detectors[position]
            if detector._last_input is frames[position] and detector._last_pooled is pooled[position]:
                detector._last_prepared = image
    return prepared  # type: ignore[return-value]


def _evaluate(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray],
              scores: bool) -> tuple[list[np.ndarray], list[float]]:
    """Error maps (kept as each detector's ``last_error_map``) and, if ``scores``, their top-1 % means."""
    _check(detectors, frames)
    prepared = _prepare(detectors, frames)
    maps: list[np.ndarray] = [np.empty(0, np.float32)] * len(detectors)
    values = [0.0] * len(detectors) if scores else []
    for positions in _groups(detectors):
        chunk = [detectors[p] for p in positions]
        inputs = np.stack([prepared[p] for p in positions])
        reconstruction = reconstruct([detector._parameters() for detector in chunk], inputs[:, None])
        errors = _errors(chunk, reconstruction[:, 0], inputs)
        if scores:
            top = top_percent_mean(errors)
        for row, position in enumerate(positions):
            maps[position] = errors[row]
            if scores:
                values[position] = float(top[row])
    for detector, error in zip(detectors, maps, strict=True):
        detector.last_error_map = error
    return maps, values


def _errors(chunk: Sequence[CameraDetector], reconstruction: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Each detector's error map (its ``error`` kind, divided by its baseline if it keeps one)."""
    kinds = [detector.error for detector in chunk]
    if len(set(kinds)) == 1:
        errors = _smoothed_error(reconstruction, inputs, kinds[0])
    else:
        errors = np.empty_like(inputs)
        for kind in set(kinds):
            rows = [row for row, other in enumerate(kinds) if other == kind]
            errors[rows] = _smoothed_error(reconstruction[rows], inputs[rows], kind)
    for row, detector in enumerate(chunk):
        errors[row] = detector.relative_to_baseline(errors[row])
    return errors


def heat_maps(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[d.heat_map(f) for d, f in zip(detectors, frames)]``, one batched pass per architecture."""
    return _evaluate(detectors, frames, scores=False)[0]


def score_frames(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> list[float]:
    """``[d.score_one(f) for d, f in zip(detectors, frames)]``, one batched pass per architecture.

    The same scores, error maps (``last_error_map``, so ``explain()``) and frame caches as scoring one by one.
    """
    return _evaluate(detectors, frames, scores=True)[1]


def learn_frames(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> None:
    """``for d, f in zip(detectors, frames): d.learn_one(f)``, the Adam steps that fall due batched.

    A detector listed again starts a new round (its second frame is offered after its first one's step).
    """
    _check(detectors, frames)
    seen: set[int] = set()
    start = 0
    for position, detector in enumerate([*detectors, None]):
        if detector is None or id(detector) in seen:
            _learn_distinct(detectors[start:position], frames[start:position])
            seen.clear()
            start = position
        seen.add(id(detector))


def _learn_distinct(detectors: Sequence[CameraDetector], frames: Sequence[np.ndarray]) -> None:
    due = [(detector, detector._due_batches(detector._offer(frame)))
           for detector, frame in zip(detectors, frames, strict=True)]
    for step in range(max((len(batches) for _, batches in due), default=0)):  # more than one: rare
        _steps([(detector, batches[step]) for detector, batches in due if len(batches) > step])


def _steps(due: Sequence[tuple[CameraDetector, np.ndarray]]) -> None:
    """One Adam step per detector on its mini-batch: batched per architecture, batch shape and Adam settings."""
    groups: dict[tuple[object, ...], list[tuple[CameraDetector, np.ndarray]]] = defaultdict(list)
    for detector, batch in due:
        settings = adam_settings(detector.optimizer)
        if settings is None:
            detector._step(batch)
        else:
            groups[(*_architecture(detector), batch.shape, settings)].append((detector, batch))
    for members in groups.values():
        for first in range(0, len(members), _TRAIN_CHUNK):
            chunk = [detector for detector, _ in members[first:first + _TRAIN_CHUNK]]
            batches = np.stack([batch for _, batch in members[first:first + _TRAIN_CHUNK]])
            reconstructions = learning_step([detector._parameters() for detector in chunk],
                                            [detector.optimizer for detector in chunk], batches)
            for detector, reconstruction, batch in zip(chunk, reconstructions, batches, strict=True):
                detector.steps += 1
                if detector.error_baseline:
                    detector._update_baseline(reconstruction, batch)
