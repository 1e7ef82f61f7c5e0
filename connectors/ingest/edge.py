"""Vibration features computed where the data enters (``--edge-features``; docs/edge-features.md).

A gateway with little bandwidth need not ship each waveform: :class:`EdgeFeatures` turns a
:class:`~fusewatch.core.events.VibrationChunk` into the :class:`~fusewatch.core.events.VibrationFeatureSet` the
workers would compute from it (wire kind 4, on the vibration topic with the same key), so the pipeline scores it
exactly as it scores the waveform. The bridges (MQTT, OPC UA) and file import call :meth:`EdgeFeatures.convert`
on each chunk before they publish; :func:`wire_sizes` measures what that saves.

>>> import numpy as np
>>> from fusewatch.core.assets import AssetRegistry, BearingKinematics
>>> from fusewatch.core.codec import decode, encode
>>> samples = np.random.default_rng(0).standard_normal(25_600).astype(np.float32)
>>> chunk = VibrationChunk(asset_id="pump-01", sensor_id="de", ts=0, sample_rate_hz=25_600.0, unit="g",
...                        samples=samples)
>>> edge = EdgeFeatures(lambda asset_id: BearingKinematics(25.0, 81.1, 118.9, 63.9, 14.8))
>>> features = edge.convert(chunk)
>>> features.features_version, len(features.features), features.n_samples
('vibration-v1', 18, 25600)
>>> decode(encode(features)) == features
True
>>> sizes = wire_sizes(chunk, features)
>>> sizes.waveform, sizes.features, round(sizes.ratio)
(102529, 488, 210)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusewatch.core.assets import AssetRegistry, BearingKinematics
from fusewatch.core.codec import decode, encode
from fusewatch.core.errors import InvalidEventError
from fusewatch.core.events import VibrationChunk, VibrationFeatureSet, make_event
from models.vibration import VibrationFeatures

BearingLookup = Callable[[str], BearingKinematics | None]
_LE_FLOAT32 = np.dtype("<f4")


class EdgeFeatures:
    """Computes a chunk's vibration features at the edge, as the workers' vibration stage would.

    ``bearings`` gives an asset's bearing kinematics (the same registry the workers read: an asset whose kinematics
    the edge does not know gets no envelope features, so the workers must not know them either). One instance
    serves every asset; it caches spectral index plans per (length, rate, bearing), so keep it for the process.
    """

    def __init__(self, bearings: BearingLookup) -> None:
        self.bearings = bearings
        self.extractor = VibrationFeatures()
        version = self.extractor.version
        if version is None:  # the defaults are the workers' extractor; anything else would not score the same
            raise ValueError("the edge extractor must use the workers' default feature parameters")
        self.version: str = version

    @classmethod
    def for_registry(cls, registry: AssetRegistry | None) -> EdgeFeatures:
        """The converter with the bearings of ``registry`` (a plant file's assets); none known without one."""
        return cls(registry.bearings if registry is not None else lambda asset_id: None)

    def convert(self, chunk: VibrationChunk) -> VibrationFeatureSet:
        """The feature set that stands for ``chunk`` on the vibration topic.

        The samples are computed from a fresh copy of their little-endian bytes, as a worker decodes them: numpy's
        float32 sums depend on the memory alignment of the array, and the copy gives the workers' alignment, so the
        features are bit for bit those a worker computes from the waveform.
        """
        samples = np.frombuffer(chunk.samples.astype(_LE_FLOAT32, copy=False).tobytes(), dtype=_LE_FLOAT32)
        features = self.extractor.transform(samples, chunk.sample_rate_hz, self.bearings(chunk.asset_id))
        return make_event(VibrationFeatureSet, asset_id=chunk.asset_id, sensor_id=chunk.sensor_id, ts=chunk.ts,
                          sample_rate_hz=chunk.sample_rate_hz, unit=chunk.unit, n_samples=int(chunk.samples.size),
                          features_version=self.version, features=features)

    def convert_message(self, raw: bytes) -> bytes:
        """A wire message of kind 1 (vibration chunk) as the kind 4 message of its features; other kinds are returned
        unchanged. Raises :class:`~fusewatch.core.errors.InvalidEventError` naming the field of an invalid message
        (a bridge dead-letters it as it would the waveform)."""
        event = decode(raw)
        if isinstance(event, VibrationChunk):
            return encode(self.convert(event))
        return raw


@dataclass(frozen=True)
class WireSizes:
    """Bytes of one chunk on the wire, as a waveform (kind 1) and as features (kind 4)."""

    waveform: int
    features: int

    @property
    def ratio(self) -> float:
        """How many times smaller the features message is."""
        return self.waveform / self.features


def wire_sizes(chunk: VibrationChunk, features: VibrationFeatureSet) -> WireSizes:
    """The encoded sizes of a chunk and of its feature set (the Kafka message values, keys not counted)."""
    if (features.asset_id, features.sensor_id, features.ts) != (chunk.asset_id, chunk.sensor_id, chunk.ts):
        raise InvalidEventError("features", "were not computed from this chunk (asset, sensor or ts differ)")
    return WireSizes(len(encode(chunk)), len(encode(features)))
