"""Sparkplug B ``DDATA`` with FloatArray/DoubleArray metrics → vibration chunks (docs/ingest-mqtt.md).

Topics are ``spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]``. A ``DBIRTH`` is remembered per
device (metric aliases, datatypes, the ``sample_rate_hz`` metric); a ``DDATA`` gives one chunk per FloatArray or
DoubleArray metric, its asset the device id, its sensor id the metric name:

>>> import numpy as np
>>> from connectors.ingest.sparkplug.schema import DataType, Payload
>>> birth = Payload(timestamp=1_796_083_200_000)
>>> _ = birth.metrics.add(name="sample_rate_hz", alias=1, datatype=DataType.Double, double_value=25600.0)
>>> _ = birth.metrics.add(name="vib/de", alias=2, datatype=DataType.FloatArray, bytes_value=b"")
>>> decoder = SparkplugDecoder()
>>> decoder.decode("spBv1.0/plant/DBIRTH/edge-1/pump-01", birth.SerializeToString()).ignored
'DBIRTH'
>>> data = Payload(timestamp=1_796_083_200_500)
>>> _ = data.metrics.add(alias=2, bytes_value=np.arange(4, dtype="<f4").tobytes())
>>> result = decoder.decode("spBv1.0/plant/DDATA/edge-1/pump-01", data.SerializeToString())
>>> [(c.asset_id, c.sensor_id, c.ts, c.sample_rate_hz, c.samples.tolist()) for c in result.chunks]
[('pump-01', 'vib/de', 1796083200500000000, 25600.0, [0.0, 1.0, 2.0, 3.0])]
>>> decoder.decode("spBv1.0/plant/DDATA/edge-1/fan-02", data.SerializeToString()).error
'metrics[0]: alias 2 is not in a DBIRTH of edge-1/fan-02 (none seen since the bridge started)'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from connectors.ingest.sparkplug.schema import ARRAYS, NUMERIC, DataType, Payload
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.events import VibrationChunk, make_event
from fusewatch.core.plant import Plant
from fusewatch.core.timeutil import NS_PER_MS

NAMESPACE = "spBv1.0"
SAMPLE_RATE_METRIC = "sample_rate_hz"
_FLOATS = {DataType.FloatArray: ("<f4", 4, "float"), DataType.DoubleArray: ("<f8", 8, "double")}
_MESSAGE_TYPES = ("NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD", "STATE")


def subscriptions(groups: tuple[str, ...] | list[str]) -> list[str]:
    """The topic filters of the Sparkplug groups (``+``: every group): their DBIRTH and DDATA messages.

    >>> subscriptions(["plant-a", "+"])
    ['spBv1.0/plant-a/DBIRTH/+/+', 'spBv1.0/plant-a/DDATA/+/+', 'spBv1.0/+/DBIRTH/+/+', 'spBv1.0/+/DDATA/+/+']
    >>> subscriptions(["a/b"])
    Traceback (most recent call last):
    ...
    fusewatch.core.errors.ConfigError: --sparkplug-group: 'a/b' is not a Sparkplug group id (no '/', '+', '#')
    """
    filters = []
    for group in groups:
        if group != "+" and (not group or any(char in group for char in "/+#")):
            raise ConfigError(f"--sparkplug-group: {group!r} is not a Sparkplug group id (no '/', '+', '#')")
        filters += [f"{NAMESPACE}/{group}/DBIRTH/+/+", f"{NAMESPACE}/{group}/DDATA/+/+"]
    return filters


@dataclass(frozen=True)
class SparkplugTopic:
    """A Sparkplug B topic: group, message type, edge node and (for device messages) device.

    >>> SparkplugTopic.parse("spBv1.0/plant/DDATA/edge-1/pump-01")
    SparkplugTopic(group_id='plant', message_type='DDATA', edge_node_id='edge-1', device_id='pump-01')
    >>> SparkplugTopic.parse("spBv1.0/plant/DATA/edge-1")
    Traceback (most recent call last):
    ...
    fusewatch.core.errors.InvalidEventError: topic: 'DATA' is not a Sparkplug B message type
    """

    group_id: str
    message_type: str
    edge_node_id: str
    device_id: str | None

    @classmethod
    def parse(cls, topic: str) -> SparkplugTopic:
        levels = topic.split("/")
        if levels[0] != NAMESPACE or len(levels) not in (4, 5) or not all(levels):
            raise InvalidEventError("topic", f"is not {NAMESPACE}/GROUP/TYPE/EDGE_NODE[/DEVICE]")
        if levels[2] not in _MESSAGE_TYPES:
            raise InvalidEventError("topic", f"{levels[2]!r} is not a Sparkplug B message type")
        return cls(levels[1], levels[2], levels[3], levels[4] if len(levels) == 5 else None)


@dataclass
class Decoded:
    """What one message gives: chunks to send, the reason(s) for a dead letter, or why it was ignored."""

    chunks: list[VibrationChunk] = field(default_factory=list)
    error: str | None = None
    ignored: str | None = None


@dataclass
class _Birth:
    """What a device's DBIRTH declared: alias → name, name → datatype, and the latest sample rate."""

    names: dict[int, str] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)
    sample_rate_hz: float | None = None


class SparkplugDecoder:
    """Decodes Sparkplug B messages of one bridge; remembers each device's DBIRTH (not thread-safe: one caller).

    ``sample_rate_hz`` is used when neither the DDATA nor the DBIRTH has a ``sample_rate_hz`` metric (then the
    plant file's vibration ``sample_rate_hz``). With a plant file, the device id must be one of its assets with an
    MQTT vibration stream. ``counts`` counts messages and metrics taken or ignored, by kind.
    """

    def __init__(self, plant: Plant | None = None, sample_rate_hz: float | None = None) -> None:
        self.plant = plant
        self.sample_rate_hz = sample_rate_hz
        self.counts: Counter[str] = Counter()
        self._births: dict[tuple[str, str, str], _Birth] = {}

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """The chunks of one message; :class:`InvalidEventError` if the topic or the whole payload is unreadable."""
        where = SparkplugTopic.parse(topic)
        if where.message_type not in ("DBIRTH", "DDATA") or where.device_id is None:
            self.counts[f"sparkplug_{where.message_type.lower()}_ignored"] += 1
            return Decoded(ignored=where.message_type)
        try:
            message: Any = Payload.FromString(payload)
        except DecodeError as exc:
            raise InvalidEventError("payload", f"is not a Sparkplug B payload ({exc})") from None
        key = (where.group_id, where.edge_node_id, where.device_id)
        if where.message_type == "DBIRTH":
            self._births[key] = self._birth(message)
            self.counts["sparkplug_dbirth"] += 1
            return Decoded(ignored="DBIRTH")
        return self._data(where, key, message)

    def _birth(self, message: Any) -> _Birth:
        birth = _Birth()
        for metric in message.metrics:
            if not metric.name:
                continue
            if metric.HasField("alias"):
                birth.names[metric.alias] = metric.name
            if metric.HasField("datatype"):
                birth.datatypes[metric.name] = metric.datatype
            if metric.name == SAMPLE_RATE_METRIC:
                try:
                    birth.sample_rate_hz = _number(metric, birth.datatypes.get(metric.name))
                except InvalidEventError:
                    birth.sample_rate_hz = None  # reported by each DDATA that needs it
        return birth

    def _data(self, where: SparkplugTopic, key: tuple[str, str, str], message: Any) -> Decoded:
        asset_id = key[2]
        birth = self._births.get(key)
        errors: list[str] = []
        arrays: list[tuple[int, str, int, Any]] = []
        sample_rate: float | None = None
        for index, metric in enumerate(message.metrics):
            try:
                name = self._name(index, metric, birth, where)
                datatype = metric.datatype if metric.HasField("datatype") else (
                    None if birth is None else birth.datatypes.get(name))
                if name == SAMPLE_RATE_METRIC:
                    sample_rate = _number(metric, datatype, f"metrics[{index}] {name!r}")
                    if birth is not None:
                        birth.sample_rate_hz = sample_rate
                elif datatype in _FLOATS:
                    arrays.append((index, name, datatype, metric))
                elif datatype in ARRAYS:
                    raise InvalidEventError(f"metrics[{index}] {name!r} datatype", f"{DataType.name(datatype)} is"
                                            " not taken (FloatArray or DoubleArray only)")
                elif datatype is None:
                    raise InvalidEventError(f"metrics[{index}] {name!r} datatype", "missing, and not in a DBIRTH")
                else:
                    self.counts["sparkplug_metrics_ignored"] += 1
            except InvalidEventError as exc:
                errors.append(str(exc))
        if sample_rate is None and birth is not None:
            sample_rate = birth.sample_rate_hz
        result = Decoded()
        for index, name, datatype, metric in arrays:
            try:
                self._check_asset(asset_id)
                result.chunks.append(self._chunk(index, name, datatype, metric, message, asset_id, sample_rate))
            except InvalidEventError as exc:
                errors.append(str(exc))
        if errors:
            result.error = "; ".join(dict.fromkeys(errors))
        elif not result.chunks:
            self.counts["sparkplug_ddata_without_arrays"] += 1
            result.ignored = "DDATA without FloatArray or DoubleArray metrics"
        self.counts["sparkplug_chunks"] += len(result.chunks)
        return result

    @staticmethod
    def _name(index: int, metric: Any, birth: _Birth | None, where: SparkplugTopic) -> str:
        if metric.name:
            return str(metric.name)
        if not metric.HasField("alias"):
            raise InvalidEventError(f"metrics[{index}]", "has neither a name nor an alias")
        name = None if birth is None else birth.names.get(metric.alias)
        if name is None:
            seen = "none seen since the bridge started" if birth is None else "its DBIRTH does not declare it"
            raise InvalidEventError(f"metrics[{index}]", f"alias {metric.alias} is not in a DBIRTH of"
                                    f" {where.edge_node_id}/{where.device_id} ({seen})")
        return name

    def _check_asset(self, asset_id: str) -> None:
        if self.plant is None:
            return
        asset = self.plant.asset(asset_id)
        if asset is None:
            raise InvalidEventError("topic", f"device {asset_id!r} is not an asset of the plant file")
        if asset.vibration is None or asset.vibration.source != "mqtt":
            raise InvalidEventError("topic", f"the plant file has no MQTT vibration stream for {asset_id!r}")

    def _chunk(self, index: int, name: str, datatype: int, metric: Any, message: Any, asset_id: str,
               sample_rate: float | None) -> VibrationChunk:
        label = f"metrics[{index}] {name!r}"
        dtype, size, word = _FLOATS[datatype]
        kind = metric.WhichOneof("value")
        if metric.is_null or kind is None:
            raise InvalidEventError(f"{label} bytes_value", "missing (a null metric)")
        if kind != "bytes_value":
            raise InvalidEventError(f"{label} bytes_value", f"the value is {kind}, not the little-endian bytes of a"
                                    f" {DataType.name(datatype)}")
        data = metric.bytes_value
        if len(data) % size:
            raise InvalidEventError(f"{label} bytes_value", f"{len(data)} bytes is not a whole number of {size}-byte"
                                    f" {word}s ({DataType.name(datatype)}); truncated?")
        stamp = metric.timestamp if metric.HasField("timestamp") else (
            message.timestamp if message.HasField("timestamp") else None)
        if stamp is None:
            raise InvalidEventError(f"{label} timestamp", "neither the metric nor the payload has one")
        asset = None if self.plant is None else self.plant.asset(asset_id)
        stream = None if asset is None else asset.vibration
        rate = sample_rate or self.sample_rate_hz or (None if stream is None else stream.sample_rate_hz)
        if rate is None:
            raise InvalidEventError(f"{label} sample_rate_hz", f"no {SAMPLE_RATE_METRIC!r} metric in this DDATA or"
                                    " the DBIRTH, and no --sparkplug-sample-rate or plant sample_rate_hz")
        try:
            return make_event(VibrationChunk, asset_id=asset_id, sensor_id=name, ts=int(stamp) * NS_PER_MS,
                              sample_rate_hz=rate, unit="g" if stream is None else stream.unit,
                              samples=np.frombuffer(data, dtype=dtype))
        except InvalidEventError as exc:
            raise InvalidEventError(f"{label} {exc.field}", exc.reason) from None


def _number(metric: Any, datatype: int | None, label: str = SAMPLE_RATE_METRIC) -> float:
    """The value of a numeric scalar metric."""
    kind = metric.WhichOneof("value")
    if datatype is not None and datatype not in NUMERIC:
        raise InvalidEventError(f"{label} datatype", f"{DataType.name(datatype)} is not a number")
    if kind not in ("int_value", "long_value", "float_value", "double_value") or metric.is_null:
        raise InvalidEventError(f"{label} value", f"{kind or 'null'} is not a number")
    return float(getattr(metric, kind))
