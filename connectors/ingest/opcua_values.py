"""What OPC UA values become: the nodes a plant file names, and a node's value → an input event (docs/ingest-opcua.md).

Each OPC UA stream of the plant file names one node: a Float or Double array per vibration snapshot (its sample
rate from ``sample_rate_hz`` or the node ``sample_rate_node``), a ByteString holding a JPEG or PNG image, a String
holding a maintenance-log text. :func:`event_of` reads a value into its asset's event with the value's source
timestamp as the event time; anything else raises :class:`~fusewatch.core.errors.InvalidEventError` naming the
field and the reason, which the bridge turns into a dead letter:

>>> node = WatchedNode("ns=2;s=Pump01.Vibration", "pump-01", "vibration", StreamDefaults(), sample_rate_hz=4.0)
>>> event = event_of(node, [0.5, -0.5, 0.25, 0.0], "Float", 1796083200000000000, None)
>>> event.asset_id, event.ts, event.sample_rate_hz, event.samples.tolist()
('pump-01', 1796083200000000000, 4.0, [0.5, -0.5, 0.25, 0.0])
>>> event_of(node, [], "Float", 1796083200000000000, None)
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: samples: is empty
>>> event_of(node, "hello", "String", 1796083200000000000, None)
Traceback (most recent call last):
...
fusewatch.core.errors.InvalidEventError: value: a String value on a vibration node; expected a Float or Double array
>>> datetime_ns(datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc))
1796083200000000000
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

from connectors.ingest.payloads import StreamDefaults, frame_event
from fusewatch.core.codec import InputEvent
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.events import MaintenanceLog, VibrationChunk, make_event
from fusewatch.core.plant import Plant, PlantModality

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
FLOAT_TYPES = {"Float": np.float32, "Double": np.float64}


@dataclass(frozen=True)
class WatchedNode:
    """One node the bridge subscribes to: which asset's stream it carries and how to read it."""

    node_id: str
    asset_id: str
    modality: PlantModality
    defaults: StreamDefaults
    sample_rate_hz: float | None = None
    sample_rate_node: str | None = None


def watched_nodes(plant: Plant, server_url: str) -> list[WatchedNode]:
    """The OPC UA streams of ``plant`` on the server ``server_url`` (a stream's ``url`` or the plant's ``[opcua]``)."""
    default_url = None if plant.opcua is None else plant.opcua.url
    nodes: list[WatchedNode] = []
    for asset in plant.assets:
        vib, cam, logs = asset.vibration, asset.camera, asset.logs
        if vib is not None and vib.source == "opcua" and (vib.url or default_url) == server_url:
            nodes.append(WatchedNode(str(vib.node), asset.id, "vibration",
                                     StreamDefaults(sensor_id=vib.sensor_id, unit=vib.unit),
                                     vib.sample_rate_hz, vib.sample_rate_node))
        if cam is not None and cam.source == "opcua" and (cam.url or default_url) == server_url:
            nodes.append(WatchedNode(str(cam.node), asset.id, "frame", StreamDefaults(camera_id=cam.id)))
        if logs is not None and logs.source == "opcua" and (logs.url or default_url) == server_url:
            nodes.append(WatchedNode(str(logs.node), asset.id, "log", StreamDefaults(author=logs.author)))
    if not nodes:
        raise ConfigError(f"the plant file names no OPC UA stream on {server_url} (streams with source = \"opcua\")")
    ids = [node.node_id for node in nodes]
    for node_id in ids:
        if ids.count(node_id) > 1:
            raise ConfigError(f"OPC UA node {node_id} is named by more than one stream of the plant file")
    return nodes


def datetime_ns(value: datetime.datetime) -> int:
    """A timestamp as integer nanoseconds since the epoch (an OPC UA timestamp without zone is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def event_of(node: WatchedNode, value: object, variant: str | None, ts_ns: int, rate_hz: float | None) -> InputEvent:
    """The event of ``node``'s stream that ``value`` (of OPC UA type ``variant``) holds, at event time ``ts_ns``.

    ``rate_hz`` is the sample rate read from ``sample_rate_node`` (``None``: the plant file's ``sample_rate_hz``).
    """
    if node.modality == "vibration":
        if variant not in FLOAT_TYPES or not isinstance(value, list | np.ndarray):
            raise InvalidEventError("value", f"a {variant or 'null'} value on a vibration node; expected a Float or"
                                             " Double array")
        rate = node.sample_rate_hz if rate_hz is None else rate_hz
        if rate is None:
            raise InvalidEventError("sample_rate_hz", f"the sample rate node {node.sample_rate_node} was not read")
        samples = np.asarray(value, dtype=FLOAT_TYPES[variant])
        if samples.size and not np.isfinite(samples).all():
            bad = int(np.flatnonzero(~np.isfinite(samples))[0])
            raise InvalidEventError("samples", f"contains NaN or infinity (first at index {bad} of {samples.size})")
        return make_event(VibrationChunk, asset_id=node.asset_id, ts=ts_ns, sample_rate_hz=float(rate),
                          samples=samples, sensor_id=node.defaults.sensor_id, unit=node.defaults.unit)
    if node.modality == "frame":
        if variant != "ByteString" or not isinstance(value, bytes):
            raise InvalidEventError("value", f"a {variant or 'null'} value on an image node; expected a ByteString"
                                             " of a JPEG or PNG image")
        return frame_event(node.asset_id, node.defaults.camera_id, ts_ns, value)
    if variant != "String" or not isinstance(value, str):
        raise InvalidEventError("value", f"a {variant or 'null'} value on a log node; expected a String")
    return make_event(MaintenanceLog, asset_id=node.asset_id, ts=ts_ns, text=value, author=node.defaults.author)


def rate_of(value: object, node_id: str) -> float:
    """A sample rate read from a node: a positive finite number, else :class:`InvalidEventError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        raise InvalidEventError("sample_rate_hz", f"the node {node_id} holds {value!r}, not a positive number")
    return float(value)
