"""Sparkplug B decoding: payloads built with the schema's classes, as an edge node would send them."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.ingest.sparkplug import SparkplugDecoder, split_done, subscriptions
from connectors.ingest.sparkplug.schema import DataType, Payload
from fusewatch.core.errors import ConfigError, InvalidEventError
from fusewatch.core.plant import Plant

T0_MS = 1_796_083_200_000
MS = 1_000_000
DDATA = "spBv1.0/plant/DDATA/edge-1/pump-01"
DBIRTH = "spBv1.0/plant/DBIRTH/edge-1/pump-01"


def payload(*metrics: dict[str, object], ts: int | None = T0_MS) -> bytes:
    message = Payload(seq=0) if ts is None else Payload(timestamp=ts, seq=0)
    for metric in metrics:
        message.metrics.add(**metric)
    return bytes(message.SerializeToString())


def rate(hz: float = 25600.0, **extra: object) -> dict[str, object]:
    return {"name": "sample_rate_hz", "datatype": DataType.Double, "double_value": hz, **extra}


def test_float_array_becomes_a_chunk_with_the_same_float32_bytes() -> None:
    samples = np.random.default_rng(1).standard_normal(25_600).astype("<f4")
    result = SparkplugDecoder().decode(DDATA, payload(
        rate(), {"name": "Vibration/DE", "datatype": DataType.FloatArray, "timestamp": T0_MS + 250,
                 "bytes_value": samples.tobytes()},
        {"name": "temperature_c", "datatype": DataType.Float, "float_value": 41.5}))
    assert result.error is None and len(result.chunks) == 1
    chunk = result.chunks[0]
    assert (chunk.asset_id, chunk.sensor_id, chunk.ts, chunk.sample_rate_hz, chunk.unit) == (
        "pump-01", "Vibration/DE", (T0_MS + 250) * MS, 25600.0, "g")
    assert chunk.samples.astype("<f4").tobytes() == samples.tobytes()


def test_double_array_takes_the_payload_timestamp_and_the_option_sample_rate() -> None:
    values = np.array([0.5, -1.25, 3.0], dtype="<f8")
    result = SparkplugDecoder(sample_rate_hz=1000.0).decode(DDATA, payload(
        {"name": "vib", "datatype": DataType.DoubleArray, "bytes_value": values.tobytes()}))
    [chunk] = result.chunks
    assert chunk.ts == T0_MS * MS and chunk.sample_rate_hz == 1000.0
    assert chunk.samples.tolist() == [0.5, -1.25, 3.0]


def test_aliases_datatypes_and_sample_rate_come_from_the_dbirth() -> None:
    decoder = SparkplugDecoder()
    birth = payload(rate(12800.0, alias=1), {"name": "vib/x", "alias": 2, "datatype": DataType.FloatArray,
                                             "bytes_value": b""},
                    {"name": "vib/y", "alias": 3, "datatype": DataType.DoubleArray, "bytes_value": b""})
    assert decoder.decode(DBIRTH, birth).ignored == "DBIRTH"
    x, y = np.ones(4, "<f4"), np.full(2, 2.0, "<f8")
    result = decoder.decode(DDATA, payload({"alias": 2, "bytes_value": x.tobytes()},
                                           {"alias": 3, "bytes_value": y.tobytes()}))
    assert result.error is None
    assert [(c.sensor_id, c.sample_rate_hz, c.samples.tolist()) for c in result.chunks] == [
        ("vib/x", 12800.0, [1.0] * 4), ("vib/y", 12800.0, [2.0, 2.0])]
    # a changed rate in one DDATA (report by exception) holds for the next ones
    decoder.decode(DDATA, payload({"alias": 1, "double_value": 6400.0}))
    assert decoder.decode(DDATA, payload({"alias": 2, "bytes_value": x.tobytes()})).chunks[0].sample_rate_hz == 6400.0
    assert decoder.counts["sparkplug_dbirth"] == 1 and decoder.counts["sparkplug_chunks"] == 3


def test_unknown_alias_is_an_error_naming_the_metric_and_the_device() -> None:
    decoder = SparkplugDecoder(sample_rate_hz=100.0)
    data = payload({"alias": 9, "bytes_value": b"\0" * 8})
    assert decoder.decode(DDATA, data).error == (
        "metrics[0]: alias 9 is not in a DBIRTH of edge-1/pump-01 (none seen since the bridge started)")
    decoder.decode(DBIRTH, payload({"name": "vib", "alias": 2, "datatype": DataType.FloatArray, "bytes_value": b""}))
    assert decoder.decode(DDATA, data).error == (
        "metrics[0]: alias 9 is not in a DBIRTH of edge-1/pump-01 (its DBIRTH does not declare it)")


@pytest.mark.parametrize(("metric", "error"), [
    ({"name": "vib", "datatype": DataType.Int16Array, "bytes_value": b"\0" * 4},
     "metrics[1] 'vib' datatype: Int16Array is not taken (FloatArray or DoubleArray only)"),
    ({"name": "vib", "datatype": DataType.FloatArray, "float_value": 1.0},
     "metrics[1] 'vib' bytes_value: the value is float_value, not the little-endian bytes of a FloatArray"),
    ({"name": "vib", "datatype": DataType.FloatArray, "bytes_value": b"\0" * 10},
     "metrics[1] 'vib' bytes_value: 10 bytes is not a whole number of 4-byte floats (FloatArray); truncated?"),
    ({"name": "vib", "datatype": DataType.DoubleArray, "bytes_value": b"\0" * 12},
     "metrics[1] 'vib' bytes_value: 12 bytes is not a whole number of 8-byte doubles (DoubleArray); truncated?"),
    ({"name": "vib", "datatype": DataType.FloatArray, "bytes_value": np.array([1, np.nan], "<f4").tobytes()},
     "metrics[1] 'vib' samples: contains NaN or infinity"),
    ({"name": "vib", "bytes_value": b"\0" * 4}, "metrics[1] 'vib' datatype: missing, and not in a DBIRTH"),
])
def test_bad_metrics_are_errors_naming_the_field(metric: dict[str, object], error: str) -> None:
    good = np.zeros(3, "<f4")
    result = SparkplugDecoder().decode(DDATA, payload(
        rate(), metric, {"name": "other", "datatype": DataType.FloatArray, "bytes_value": good.tobytes()}))
    assert result.error == error
    assert [c.sensor_id for c in result.chunks] == ["other"]  # the good metric of the same payload is still taken


def test_sample_rate_missing_or_not_a_number() -> None:
    array = {"name": "vib", "datatype": DataType.FloatArray, "bytes_value": b"\0" * 4}
    assert SparkplugDecoder().decode(DDATA, payload(array)).error == (
        "metrics[0] 'vib' sample_rate_hz: no 'sample_rate_hz' metric in this DDATA or the DBIRTH, and no"
        " --sparkplug-sample-rate or plant sample_rate_hz")
    text = {"name": "sample_rate_hz", "datatype": DataType.String, "string_value": "fast"}
    assert SparkplugDecoder().decode(DDATA, payload(text, array)).error.startswith(  # type: ignore[union-attr]
        "metrics[0] 'sample_rate_hz' datatype: String is not a number; metrics[1] 'vib' sample_rate_hz: no")
    assert SparkplugDecoder().decode(DDATA, payload(array, ts=None)).error == (
        "metrics[0] 'vib' timestamp: neither the metric nor the payload has one")


def test_plant_file_checks_the_device_and_gives_unit_and_sample_rate() -> None:
    plant = Plant.model_validate({"assets": [
        {"id": "pump-01", "kind": "pump", "vibration": {"source": "mqtt", "unit": "m/s^2", "sample_rate_hz": 5120}},
        {"id": "fan-02", "kind": "fan", "vibration": {"source": "file"}}]})
    decoder = SparkplugDecoder(plant)
    data = payload({"name": "vib", "datatype": DataType.FloatArray, "bytes_value": b"\0" * 8})
    [chunk] = decoder.decode(DDATA, data).chunks
    assert (chunk.unit, chunk.sample_rate_hz) == ("m/s^2", 5120.0)
    assert decoder.decode(DDATA.replace("pump-01", "fan-02"), data).error == (
        "topic: the plant file has no MQTT vibration stream for 'fan-02'")
    assert decoder.decode(DDATA.replace("pump-01", "pump-07"), data).error == (
        "topic: device 'pump-07' is not an asset of the plant file")


def test_other_message_types_are_ignored_and_counted_unreadable_ones_raise() -> None:
    decoder = SparkplugDecoder(sample_rate_hz=1.0)
    for topic in ("spBv1.0/plant/NDATA/edge-1", "spBv1.0/plant/NBIRTH/edge-1", "spBv1.0/plant/DDEATH/edge-1/d"):
        assert decoder.decode(topic, b"anything").ignored is not None
    assert decoder.decode(DDATA, payload(rate())).ignored == "DDATA without FloatArray or DoubleArray metrics"
    assert (decoder.counts["sparkplug_ndata_ignored"], decoder.counts["sparkplug_ddata_without_arrays"]) == (1, 1)
    cut = payload({"name": "vib", "datatype": DataType.FloatArray, "bytes_value": b"\0" * 64})[:-10]
    with pytest.raises(InvalidEventError, match=r"^payload: is not a Sparkplug B payload"):
        decoder.decode(DDATA, cut)
    with pytest.raises(InvalidEventError, match=r"^topic: 'DATA' is not a Sparkplug B message type"):
        decoder.decode("spBv1.0/plant/DATA/edge-1/pump-01", b"")
    with pytest.raises(ConfigError, match="--sparkplug-group: 'a#' is not a Sparkplug group id"):
        subscriptions(["a#"])


def test_fields_the_schema_leaves_out_are_skipped() -> None:
    # metric with a metadata (field 8) and properties (field 9) submessage, as full Tahu payloads have
    metric = Payload.Metric(name="vib", datatype=DataType.FloatArray, bytes_value=b"\0" * 4).SerializeToString()
    metric += b"\x42\x02\x08\x01" + b"\x4a\x03\x0a\x01u"
    raw = Payload(timestamp=T0_MS).SerializeToString() + b"\x12" + bytes([len(metric)]) + metric
    [chunk] = SparkplugDecoder(sample_rate_hz=10.0).decode(DDATA, raw).chunks
    assert chunk.sensor_id == "vib" and chunk.samples.tolist() == [0.0]


def test_split_done_reports_once_the_first_error_or_all_done() -> None:
    calls: list[BaseException | None] = []
    first, second, third = split_done(calls.append, 3)
    first(None)
    second(RuntimeError("kafka"))
    third(None)
    assert len(calls) == 1 and isinstance(calls[0], RuntimeError)
