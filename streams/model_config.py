"""Settings of the per-modality models, calibration and fusion (the ``[models]`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.camera_options import CameraModelKind, ErrorKind, Normalization
from models.fusion.registry import FusionName, LateName, describe


class ModelConfig(BaseModel):
    """Settings of the per-modality models, calibration and fusion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fusion: FusionName = Field("fisher", description=f"fusion method: {describe()}")
    hybrid_late: LateName = Field(
        "fisher", description=f"the late-fusion half of hybrid fusion: {describe(late_only=True)}"
    )
    hybrid_early_weight: float = Field(0.5, ge=0, le=1, description="hybrid: weight of early fusion")
    label_horizon_hours: float = Field(
        48.0, gt=0, description="windows this long before a failure/repair log entry are positive labels"
    )
    stacking_threshold_decades: float = Field(
        6.0, gt=0, description="stacking: total surprise (decades) scored 0.5 before any label is learned"
    )
    calibration_window: int = Field(2880, ge=10, description="raw scores in each calibrator's reference window")
    calibration_gate: float = Field(
        0.999, gt=0, le=1, description="calibrators learn values calibrated below this (after warm-up)"
    )
    learn_delay: int = Field(1440, ge=0, description="windows before calibrators and the camera model learn a value")
    calibration_min_samples: int = Field(60, ge=1, description="a modality joins fusion after this many")
    warmup_windows: int = Field(2880, ge=0, description="windows per asset flagged warm-up (never alerted)")
    learn_gate: float = Field(0.95, gt=0, le=1, description="detectors learn windows calibrated below this")
    smoothing_windows: int = Field(10, ge=1, description="vibration/camera raw scores: median of this many windows")
    fusion_decades: float = Field(10.0, gt=0, description="fused score 1.0 means a 1 in 10**decades window")
    camera_model: CameraModelKind = Field(
        "autoencoder", description="camera model: autoencoder (per asset, torch) or background (per-pixel history)"
    )
    camera_memory_windows: int = Field(
        4320, ge=8, description="background: windows its per-pixel mean remembers (it learns one frame in 8)"
    )
    camera_input_size: int = Field(64, ge=8, description="side of the frame the camera model sees")
    camera_depth: int = Field(2, ge=1, le=6, description="strided layers of the autoencoder (divide the input size)")
    camera_normalization: Normalization = Field(
        "standardize", description="frame normalisation: standardize (lighting removed) or gain (mean brightness)"
    )
    camera_error: ErrorKind = Field("squared", description="error map: squared, or darker (only darker than expected)")
    camera_error_baseline: bool = Field(
        False, description="divide the error map by the running mean error map of learned frames"
    )
    vibration_top_k: int = Field(3, ge=1, description="vibration score: mean of this many largest squared z")
    seed: int = Field(0, description="seed of every model")
    bundle: Path | None = Field(
        None, description="a model bundle directory (models/bundle.py); its version is named in every score"
    )

    @field_validator("bundle", mode="before")
    @classmethod
    def _no_bundle(cls, value: object) -> object:
        """An empty path is no bundle (TOML has no null)."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_camera(self) -> ModelConfig:
        if self.camera_input_size % (1 << self.camera_depth):
            raise ValueError(f"camera_input_size {self.camera_input_size} is not a multiple of 2**camera_depth")
        return self
