"""The Sparkplug B payload messages the bridge reads, declared by field number (wire-compatible with Eclipse Tahu).

Sparkplug B payloads are Protocol Buffers (proto2) messages ``Payload`` and ``Payload.Metric`` of the Eclipse
Tahu ``sparkplug_b.proto``. This module declares, with the ``protobuf`` runtime, the subset of their fields the
bridge uses (same names, numbers and types), so no generated code is needed and any protobuf 5 to 7 runtime
works. Fields left out (metadata, properties, data sets, templates, extensions) are kept as unknown fields when a
payload is parsed, so a full Tahu payload parses without error:

>>> payload = Payload(timestamp=1_796_083_200_000, seq=3)
>>> metric = payload.metrics.add(name="vib/de", alias=7, datatype=DataType.FloatArray, bytes_value=b"\\0" * 8)
>>> again = Payload.FromString(payload.SerializeToString())
>>> again.metrics[0].name, again.metrics[0].WhichOneof("value"), len(again.metrics[0].bytes_value)
('vib/de', 'bytes_value', 8)
>>> DataType.name(31)
'DoubleArray'
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "fusewatch.sparkplug_b"

# (name, number, type) of Payload.Metric; numbers 10 to 16 are the members of the oneof ``value``
_METRIC_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("name", 1, _F.TYPE_STRING), ("alias", 2, _F.TYPE_UINT64), ("timestamp", 3, _F.TYPE_UINT64),
    ("datatype", 4, _F.TYPE_UINT32), ("is_historical", 5, _F.TYPE_BOOL), ("is_transient", 6, _F.TYPE_BOOL),
    ("is_null", 7, _F.TYPE_BOOL),
    ("int_value", 10, _F.TYPE_UINT32), ("long_value", 11, _F.TYPE_UINT64), ("float_value", 12, _F.TYPE_FLOAT),
    ("double_value", 13, _F.TYPE_DOUBLE), ("boolean_value", 14, _F.TYPE_BOOL),
    ("string_value", 15, _F.TYPE_STRING), ("bytes_value", 16, _F.TYPE_BYTES),
)
_PAYLOAD_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("timestamp", 1, _F.TYPE_UINT64), ("seq", 3, _F.TYPE_UINT64), ("uuid", 4, _F.TYPE_STRING),
    ("body", 5, _F.TYPE_BYTES),
)


class DataType:
    """The Sparkplug B ``DataType`` numbers (the ``datatype`` of a metric)."""

    Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64 = 1, 2, 3, 4, 5, 6, 7, 8
    Float, Double, Boolean, String, DateTime, Text = 9, 10, 11, 12, 13, 14
    UUID, DataSet, Bytes, File, Template, PropertySet, PropertySetList = 15, 16, 17, 18, 19, 20, 21
    Int8Array, Int16Array, Int32Array, Int64Array, UInt8Array, UInt16Array, UInt32Array, UInt64Array = range(22, 30)
    FloatArray, DoubleArray, BooleanArray, StringArray, DateTimeArray = 30, 31, 32, 33, 34

    @classmethod
    def name(cls, number: int) -> str:
        """The name of a datatype number (``Unknown(99)`` for one the specification does not define)."""
        for key, value in vars(cls).items():
            if not key.startswith("_") and value == number and isinstance(value, int):
                return key
        return f"Unknown({number})"


NUMERIC = frozenset(range(DataType.Int8, DataType.Double + 1))
"""Scalar number datatypes (integers, Float, Double)."""
ARRAYS = frozenset(range(DataType.Int8Array, DataType.DateTimeArray + 1))
"""Array datatypes (Sparkplug B 3.0): little-endian values packed in ``bytes_value``."""


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="fusewatch/sparkplug_b_subset.proto", package=_PACKAGE,
                                              syntax="proto2")
    payload = file.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in _METRIC_FIELDS:
        field = metric.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
        if number >= 10:
            field.oneof_index = 0
    for name, number, kind in _PAYLOAD_FIELDS:
        payload.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    payload.field.add(name="metrics", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                      type_name=f".{_PACKAGE}.Payload.Metric")
    return file


_pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with a generated Tahu module in the default one
_pool.Add(_file())
Payload: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Payload"))
"""``Payload``: ``timestamp`` (ms, UTC), ``metrics``, ``seq``, ``uuid``, ``body``."""
Metric: Any = Payload.Metric
"""``Payload.Metric``: ``name``, ``alias``, ``timestamp`` (ms), ``datatype``, ``is_null`` and the ``value`` oneof."""
