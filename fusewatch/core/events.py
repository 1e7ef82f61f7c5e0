"""Event contracts: the messages that flow between the plant, the stream processors and the sinks.

Inputs (keyed by ``asset_id`` on the wire): :class:`VibrationChunk` (or, computed where the data enters,
its :class:`VibrationFeatureSet`), :class:`CameraFrame`, :class:`MaintenanceLog`. Outputs: :class:`Score`,
:class:`Alert`, :class:`DeadLetter`.

All models are frozen and strict, refuse unknown fields, and carry event time as integer nanoseconds
since the Unix epoch (UTC); see :mod:`fusewatch.core.timeutil`. Build them with :func:`make_event` (or the
wire codec) to get one typed :class:`~fusewatch.core.errors.InvalidEventError` naming the field:

>>> import numpy as np
>>> chunk = make_event(VibrationChunk, asset_id="pump-1", sensor_id="de", ts=0,
...                    sample_rate_hz=25600.0, unit="g", samples=np.zeros(4, dtype=np.float32))
>>> chunk.samples.dtype, chunk.duration_ns
(dtype('float32'), 156250)
>>> make_event(VibrationChunk, asset_id="pump-1", sensor_id="de", ts=0, sample_rate_hz=25600.0,
...            unit="g", samples=[0.0, float("nan")])
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: samples: contains NaN or infinity
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fusewatch.core.errors import InvalidEventError
from fusewatch.core.timeutil import format_time, parse_time

Modality = Literal["vibration", "camera", "logs"]
MODALITIES: tuple[Modality, ...] = ("vibration", "camera", "logs")
LogKind = Literal["inspection", "symptom", "repair", "failure", "note"]
LogAction = Literal["acknowledge", "maintenance"]

MAX_ID_LENGTH = 128
MAX_SAMPLES = 10_000_000
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_FRAME_SIDE = 8192
MAX_LOG_TEXT = 20_000
MAX_FEATURES = 64

VIBRATION_FEATURES_VERSION = "vibration-v1"
"""The feature set :class:`models.vibration.VibrationFeatures` computes with its default parameters."""

VIBRATION_FEATURE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    VIBRATION_FEATURES_VERSION: (
        ("rms", "peak", "crest", "kurtosis", "skewness", *(f"band_{i}" for i in range(8)), "centroid_hz"),
        ("env_bpfo", "env_bpfi", "env_bsf", "env_ftf"),
    ),
}
"""Per feature-set version: the features always present, in order, then the envelope features present together
when the asset's bearing kinematics are known (all four or none). A new extractor gets a new version."""


def _event_time(value: object) -> int:
    try:
        ns = parse_time(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if ns < 0:
        raise ValueError("timestamp is before 1970-01-01")
    return ns


EventTime = Annotated[int, BeforeValidator(_event_time), PlainSerializer(format_time, when_used="json")]
AssetId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9_.:\-]+$")]
SourceId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class Event(BaseModel):
    """Common configuration of every contract: strict, frozen, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, arbitrary_types_allowed=True)


class VibrationChunk(Event):
    """A contiguous block of accelerometer samples; ``ts`` is the event time of the first sample."""

    asset_id: AssetId
    sensor_id: SourceId
    ts: EventTime
    sample_rate_hz: Annotated[float, Field(gt=0.0, le=1_000_000.0, allow_inf_nan=False)]
    unit: Literal["g", "m/s^2"]
    samples: np.ndarray

    @field_validator("samples", mode="before")
    @classmethod
    def _check_samples(cls, value: Any) -> np.ndarray:
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(f"must be one-dimensional, got shape {array.shape}")
        if array.size == 0:
            raise ValueError("is empty")
        if array.size > MAX_SAMPLES:
            raise ValueError(f"has {array.size} samples, more than {MAX_SAMPLES}")
        if not np.isfinite(array).all():
            raise ValueError("contains NaN or infinity")
        array.setflags(write=False)
        return array

    @property
    def duration_ns(self) -> int:
        """Time covered by the samples, in nanoseconds."""
        return round(self.samples.size * 1e9 / self.sample_rate_hz)


class VibrationFeatureSet(Event):
    """The vibration features of one chunk, computed where the data enters instead of shipping the waveform.

    It stands for the :class:`VibrationChunk` it was computed from: same ``asset_id``, ``sensor_id``, ``ts``
    (first sample), ``sample_rate_hz``, ``unit`` and ``n_samples`` (so its duration is known). ``features_version``
    names the extractor (:data:`VIBRATION_FEATURE_SETS`); an unknown one is refused, as is a feature the version
    does not define, a missing one, or a value that is not finite. The features are kept in the version's order.

    >>> names = VIBRATION_FEATURE_SETS[VIBRATION_FEATURES_VERSION][0]
    >>> fs = make_event(VibrationFeatureSet, asset_id="pump-1", sensor_id="de", ts=0, sample_rate_hz=25600.0,
    ...                 unit="g", n_samples=25600, features_version="vibration-v1", features=dict.fromkeys(names, 1.0))
    >>> fs.duration_ns, len(fs.features)
    (1000000000, 14)
    >>> make_event(VibrationFeatureSet, **{**fs.model_dump(), "features_version": "vibration-v0"})
    Traceback (most recent call last):
    ...
    fusewatch.core.errors.InvalidEventError: features_version: unknown feature set 'vibration-v0'; this version ...
    """

    asset_id: AssetId
    sensor_id: SourceId
    ts: EventTime
    sample_rate_hz: Annotated[float, Field(gt=0.0, le=1_000_000.0, allow_inf_nan=False)]
    unit: Literal["g", "m/s^2"]
    n_samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
    features_version: str
    features: dict[str, float]

    @field_validator("features_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if value not in VIBRATION_FEATURE_SETS:
            known = ", ".join(repr(v) for v in VIBRATION_FEATURE_SETS)
            raise ValueError(f"unknown feature set {value[:64]!r}; this version reads {known}"
                             " (the edge must run the same feature extractor as the workers)")
        return value

    @field_validator("features", mode="before")
    @classmethod
    def _check_features(cls, value: Any, info: ValidationInfo) -> dict[str, float]:
        if not isinstance(value, dict):
            raise ValueError(f"must be an object of feature names to numbers, got {type(value).__name__}")
        if len(value) > MAX_FEATURES:
            raise ValueError(f"has {len(value)} features, more than {MAX_FEATURES}")
        for name, number in value.items():
            if not isinstance(name, str):
                raise ValueError(f"feature name {name!r} is not a string")
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValueError(f"{name[:64]}: not a number ({type(number).__name__})")
            try:
                finite = math.isfinite(number)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise ValueError(f"{name[:64]}: not a finite number")
        version = info.data.get("features_version")
        if version not in VIBRATION_FEATURE_SETS:
            return {name: float(number) for name, number in value.items()}  # the version's own error is reported
        required, envelope = VIBRATION_FEATURE_SETS[version]
        unknown = [name for name in value if name not in required and name not in envelope]
        if unknown:
            raise ValueError(f"{unknown[0][:64]!r} is not a feature of {version}")
        missing = [name for name in required if name not in value]
        if missing:
            raise ValueError(f"{missing[0]!r} is missing ({version} always has it)")
        has_envelope = [name in value for name in envelope]
        if any(has_envelope) and not all(has_envelope):
            absent = envelope[has_envelope.index(False)]
            raise ValueError(f"{absent!r} is missing (the envelope features come all together or not at all)")
        order = required + (envelope if has_envelope and has_envelope[0] else ())
        return {name: float(value[name]) for name in order}

    @property
    def duration_ns(self) -> int:
        """Time covered by the chunk the features were computed from, in nanoseconds."""
        return round(self.n_samples * 1e9 / self.sample_rate_hz)


VibrationEvent = VibrationChunk | VibrationFeatureSet
"""What the vibration topic carries: a waveform chunk, or the features computed from one where it entered."""


class CameraFrame(Event):
    """One encoded image of an asset. The bytes are never logged nor copied to sinks."""

    asset_id: AssetId
    camera_id: SourceId
    ts: EventTime
    width: Annotated[int, Field(ge=1, le=MAX_FRAME_SIDE)]
    height: Annotated[int, Field(ge=1, le=MAX_FRAME_SIDE)]
    encoding: Literal["jpeg", "png"]
    data: Annotated[bytes, Field(min_length=1, max_length=MAX_FRAME_BYTES)]

    @field_validator("data")
    @classmethod
    def _check_magic(cls, value: bytes) -> bytes:
        if not (value.startswith(b"\x89PNG\r\n\x1a\n") or value.startswith(b"\xff\xd8\xff")):
            raise ValueError("is neither a PNG nor a JPEG image")
        return value

    def __repr__(self) -> str:  # keep image bytes out of logs and tracebacks
        return (
            f"CameraFrame(asset_id={self.asset_id!r}, camera_id={self.camera_id!r}, ts={self.ts}, "
            f"{self.width}x{self.height} {self.encoding}, {len(self.data)} bytes)"
        )

    __str__ = __repr__


class MaintenanceLog(Event):
    """A free-text entry written by a technician; ``kind`` is optional and may be inferred.

    An entry with an ``action`` is an operator's instruction to the alert policy rather than an observation of
    the machine (the models do not read it): ``acknowledge`` acknowledges the asset's open alert at ``ts``;
    ``maintenance`` declares planned work from ``ts`` to ``until``, during which no alert opens.
    """

    asset_id: AssetId
    ts: EventTime
    text: Annotated[str, Field(min_length=1, max_length=MAX_LOG_TEXT)]
    author: Annotated[str, Field(max_length=MAX_ID_LENGTH)] | None = None
    kind: LogKind | None = None
    action: LogAction | None = None
    until: EventTime | None = None

    @field_validator("text")
    @classmethod
    def _check_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @model_validator(mode="after")
    def _check_action(self) -> MaintenanceLog:
        if (self.action == "maintenance") != (self.until is not None):
            raise ValueError("until is given with action 'maintenance', and only then")
        if self.until is not None and self.until <= self.ts:
            raise ValueError("until must be after ts")
        return self


class Score(Event):
    """The fused anomaly score of one asset window, with what drove it.

    ``contributions`` sum to ``fused``; ``calibrated`` holds the present modalities' scores in [0, 1];
    ``features`` the window's vibration features (empty without vibration), for dashboards.
    """

    asset_id: AssetId
    window_start: EventTime
    window_end: EventTime
    fused: Probability
    calibrated: dict[Modality, Probability]
    raw: dict[Modality, float]
    contributions: dict[Modality, float]
    present: dict[Modality, bool]
    leading: Modality | None
    top_features: list[tuple[str, float]]
    warmup: bool
    model_version: str
    run_id: str
    features: dict[str, float] = {}


class SimilarIncident(Event):
    """A past incident similar to an alert's window: its log text and a summary of the window before it."""

    similarity: float
    asset_id: AssetId
    ts: EventTime
    kind: str
    text: str
    leading: str | None
    peak_fused: float


class Alert(Event):
    """A transition of an asset's alert state machine. ``alert_id`` is deterministic.

    An ``opened`` alert carries the most similar past incidents (cross-modal retrieval, docs/models.md);
    ``grafana_url`` links to the asset's dashboard around the alert when ``[alerts] grafana_url`` is set.
    """

    alert_id: str
    asset_id: AssetId
    ts: EventTime
    transition: Literal["opened", "escalated", "closed", "acknowledged", "suppressed"]
    severity: Literal["warning", "critical"]
    fused: Probability
    contributions: dict[Modality, float]
    leading: Modality | None
    top_features: list[tuple[str, float]]
    opened_at: EventTime
    run_id: str
    similar_incidents: list[SimilarIncident] = []
    grafana_url: str | None = None


class DeadLetter(Event):
    """A message that could not be processed, with where it came from and why; raw bytes in base64."""

    source_topic: str
    partition: int
    offset: int
    error: str
    raw_base64: str
    ts: EventTime


class WorkerHealth(Event):
    """What one worker reports about its event time every few seconds (topic ``worker-health``, key: ``worker``).

    ``ts``: wall-clock time of the report; ``event_time_lag_s``: per modality, the most any of its assets' streams
    is behind that asset's newest event; ``held_bytes``: bytes its event-time merges hold; ``window_bytes``: bytes
    its aligners' open windows hold; ``paused``: input topic-partitions paused by flow control.
    """

    worker: str
    ts: EventTime
    partitions: list[int]
    event_time_lag_s: dict[Modality, float]
    held_bytes: int
    window_bytes: int
    paused: int


EventT = TypeVar("EventT", bound=BaseModel)


def make_event(cls: type[EventT], **fields: Any) -> EventT:
    """Validate ``fields`` into ``cls``; on failure raise one :class:`InvalidEventError` for the first problem."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise invalid_event_from(exc) from None


def invalid_event_from(exc: ValidationError) -> InvalidEventError:
    """Translate pydantic's error list into our typed error naming the first bad field."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "<message>"
    reason = str(first["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        reason = reason.removeprefix(prefix)
    if first["type"] == "extra_forbidden":
        reason = "unknown field"
    return InvalidEventError(field, reason)


FaultType = Literal["bearing_outer", "bearing_inner", "leak", "winding"]


class GroundTruth(Event):
    """What really happened to one simulated asset, exported next to the scores for evaluation.

    ``onset_at`` is when the fault starts (buried in noise), ``failure_at`` when the asset fails and stops;
    ``restart_at`` when it runs again after the repair. ``first_modality`` is the modality that, by
    construction of the fault, shows it first.
    """

    asset_id: AssetId
    asset_kind: Literal["pump", "motor"]
    fault_type: FaultType | None
    onset_at: EventTime | None
    failure_at: EventTime | None
    restart_at: EventTime | None
    first_modality: Modality | None
