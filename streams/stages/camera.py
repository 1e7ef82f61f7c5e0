"""The camera stage: the window's frame → :class:`~models.camera.CameraDetector` (a per-asset autoencoder).

The raw score is the frame's reconstruction error (the mean of the worst 1 % of the error map); it is smoothed
by a running median before calibration, so a single odd frame (a person walking past the camera) does not move
it while a developing fault, which shifts many windows, does. Early fusion sees the error's logarithm (it spans
decades). The autoencoder learns frames judged normal a day late (``learn_delay``), like the calibrators, and
drops the frames still waiting when an alert opens; the explanation is where the frame just scored was worst
reconstructed.

With a bundle that holds camera models (``camera.safetensors``: one autoencoder per asset kind, trained on the
fleet's normal frames of that kind, and one over all kinds, ``*``), a new asset's autoencoder starts from its
kind's weights (the pooled ones for another kind) with :data:`ADAPT_STEPS` steps of its warm phase left: it
adapts to its own scene during the first two hours, then learns as a warm model does (a day late).

With ``[models] camera_model = "background"`` each asset has a :class:`~models.camera_background.PixelBackground`
instead: each pixel against its own history over ``camera_memory_windows``, learned a day late in the same way.
It needs no torch and starts from no bundle (a scene is its own); a bundle's camera models are then not used.

>>> import numpy as np
>>> from fusewatch.core.events import CameraFrame
>>> from streams.aligner import TimedFrame
>>> stage = CameraStage(ModelConfig())
>>> detector = stage.new_state(seed=0)
>>> event = CameraFrame(asset_id="pump-01", camera_id="cam-1", ts=0, width=64, height=64, encoding="png",
...                     data=b"\\x89PNG\\r\\n\\x1a\\n")
>>> frame = TimedFrame(event, np.full((64, 64), 90, dtype=np.uint8))
>>> window = AlignedWindow("pump-01", 0, 60, vibration=(), frame=frame, logs=(), closed_by="flush")
>>> [reading] = stage.score_batch([detector], [window], lambda asset_id: None)
>>> reading is not None and reading.raw >= 0.0, list(reading.early)
(True, ['camera.error'])
>>> [name for name, _ in stage.explain(detector, reading)]
['peak_error', 'peak_row', 'peak_col']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusewatch.core.errors import BundleError
from models.bundle import ANY_KIND, Bundle
from models.camera import CameraDetector
from models.camera_background import PixelBackground
from models.camera_batch import learn_frames, score_frames
from models.early import early_features
from streams.aligner import AlignedWindow
from streams.model_config import ModelConfig
from streams.stages.base import BearingLookup, Reading
from streams.stages.channel import Channel

CAMERA_MODELS_FILE = "camera.safetensors"
"""A bundle's camera models: tensors named ``<kind>/<parameter>``."""
ADAPT_STEPS = 8
"""Warm-phase steps left to a model started from its kind's weights (8 x 16 frames: two hours of frames a minute)."""
BACKGROUND_WARM_FRAMES = 720
"""Frames a background learns at once before it learns a day late (12 hours of frames a minute)."""
LEARN_EVERY = 8
"""One frame in this many offered is learned once a camera model is warm."""

CameraModel = CameraDetector | PixelBackground


class CameraStage:
    """A camera model per asset, an autoencoder or a per-pixel background (the settings of ``[models] camera_*``)."""

    name = "camera"

    def __init__(self, config: ModelConfig, bundle: Bundle | None = None) -> None:
        self.config = config
        self.kind_weights: dict[str, dict[str, np.ndarray]] = {}
        if bundle is not None and bundle.has(CAMERA_MODELS_FILE) and config.camera_model == "autoencoder":
            self.kind_weights = kind_weights(bundle)
            for kind, weights in sorted(self.kind_weights.items()):  # another architecture is refused at once
                try:
                    self.new_detector(0).start_from(weights, ADAPT_STEPS)
                except ValueError as exc:
                    raise BundleError(bundle.path, f"{CAMERA_MODELS_FILE}: {kind}: {exc}") from None

    @property
    def gated(self) -> bool:
        """The autoencoder learns only windows below ``learn_gate``; a background learns every window the asset
        may learn (its three-day memory keeps a slow fault from becoming normal)."""
        return self.config.camera_model == "autoencoder"

    def new_detector(self, seed: int) -> CameraDetector:
        """An autoencoder with the ``[models] camera_*`` settings, initialised from ``seed``."""
        config = self.config
        return CameraDetector(
            input_size=config.camera_input_size, learn_every=LEARN_EVERY, learn_delay=config.learn_delay, seed=seed,
            depth=config.camera_depth, normalization=config.camera_normalization, error=config.camera_error,
            error_baseline=config.camera_error_baseline,
        )

    def new_state(self, seed: int, kind: str | None = None) -> CameraModel:
        """An asset's camera model: a background, or an autoencoder from its kind's weights when the bundle has
        them, else from ``seed``."""
        config = self.config
        if config.camera_model == "background":
            return PixelBackground(input_size=config.camera_input_size,
                                   memory_frames=config.camera_memory_windows / LEARN_EVERY,
                                   warm_frames=BACKGROUND_WARM_FRAMES, learn_every=LEARN_EVERY,
                                   learn_delay=config.learn_delay)
        detector = self.new_detector(seed)
        weights = self.kind_weights.get(kind or ANY_KIND) or self.kind_weights.get(ANY_KIND)
        if weights is not None:
            detector.start_from(weights, ADAPT_STEPS)
        return detector

    def new_channel(self) -> Channel:
        """Smoothed, calibrated against recent normal history, learned late."""
        return Channel.learned(self.config)

    def score_batch(self, states: Sequence[CameraModel], windows: Sequence[AlignedWindow],
                    bearings: BearingLookup) -> list[Reading | None]:
        """The error of each window's frame: one autoencoder pass over the batch's frames (backgrounds one by one)."""
        encoders, backgrounds = _framed(states, windows)
        errors = dict(zip([at for at, _, _ in encoders],
                          score_frames([state for _, state, _ in encoders], [pixels for _, _, pixels in encoders]),
                          strict=True))
        errors.update({at: state.score_one(pixels) for at, state, pixels in backgrounds})
        return [_reading(errors[at]) if at in errors else None for at in range(len(windows))]

    def learn_batch(self, states: Sequence[CameraModel], windows: Sequence[AlignedWindow],
                    readings: Sequence[Reading]) -> None:
        """Offer each frame to its model (learned at once while it warms up, else ``learn_delay`` later); the
        autoencoders' training steps that fall due run as one batched step."""
        encoders, backgrounds = _framed(states, windows)
        learn_frames([state for _, state, _ in encoders], [pixels for _, _, pixels in encoders])
        for _, state, pixels in backgrounds:
            state.learn_one(pixels)

    def forget_pending(self, state: CameraModel) -> None:
        """Drop the frames waiting to be learned."""
        state.forget_pending()

    def explain(self, state: CameraModel, reading: Reading) -> list[tuple[str, float]]:
        """Peak error of the frame just scored and its row and column (0-1)."""
        return state.explain()


def _framed(states: Sequence[CameraModel], windows: Sequence[AlignedWindow]
            ) -> tuple[list[tuple[int, CameraDetector, np.ndarray]], list[tuple[int, PixelBackground, np.ndarray]]]:
    """The windows with a frame (position, model, pixels), those of autoencoders and of backgrounds apart."""
    encoders: list[tuple[int, CameraDetector, np.ndarray]] = []
    backgrounds: list[tuple[int, PixelBackground, np.ndarray]] = []
    for at, (state, window) in enumerate(zip(states, windows, strict=True)):
        if window.frame is None:
            continue
        if isinstance(state, PixelBackground):
            backgrounds.append((at, state, window.frame.pixels))
        else:
            encoders.append((at, state, window.frame.pixels))
    return encoders, backgrounds


def _reading(error: float) -> Reading:
    return Reading(error, early_features(None, error, None))


def kind_weights(bundle: Bundle) -> dict[str, dict[str, np.ndarray]]:
    """The bundle's camera models by kind."""
    models: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in bundle.tensors(CAMERA_MODELS_FILE).items():
        kind, _, parameter = name.rpartition("/")
        if not kind:
            raise BundleError(bundle.path, f"{CAMERA_MODELS_FILE}: tensor {name!r} is not named <kind>/<parameter>")
        models.setdefault(kind, {})[parameter] = tensor
    return models
