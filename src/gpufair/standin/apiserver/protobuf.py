"""Just enough of Kubernetes' protobuf encoding for ``kubectl create namespace``.

kubectl 1.32 sends typed commands (``kubectl create namespace``, ``create configmap``…) as
``application/vnd.kubernetes.protobuf``, with no fallback to JSON. Decoding every built-in type
would need all of Kubernetes' ``.proto`` files; the stand-in decodes only the envelope and the
object's ``metadata`` (field 1 of every Kubernetes object) and accepts that for Namespaces, whose
create request carries nothing else. Any other protobuf body is answered ``415`` with a hint to
use ``kubectl apply -f``/``create -f`` (which send JSON).
"""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for everything else."""
    found: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            found.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            found.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            found.append((number, data[pos : pos + 8]))
            pos += 8
        elif wire == 5:
            found.append((number, data[pos : pos + 4]))
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return found


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode()


def _map_entry(value: int | bytes) -> tuple[str, str]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    entry = dict(fields(value))
    return _text(entry.get(1, b"")), _text(entry.get(2, b""))


def _metadata(data: bytes) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for number, value in fields(data):
        if number == 1 and value:
            metadata["name"] = _text(value)
        elif number == 2 and value:
            metadata["generateName"] = _text(value)
        elif number == 3 and value:
            metadata["namespace"] = _text(value)
        elif number == 11:
            key, val = _map_entry(value)
            metadata.setdefault("labels", {})[key] = val
        elif number == 12:
            key, val = _map_entry(value)
            metadata.setdefault("annotations", {})[key] = val
        elif number == 14:
            metadata.setdefault("finalizers", []).append(_text(value))
    return metadata


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded Namespace (raises ``ProtobufError`` otherwise)."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = dict(fields(body[len(_MAGIC) :]))
    type_meta = envelope.get(1, b"")
    raw = envelope.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes):
        raise ProtobufError("malformed envelope")
    type_fields = dict(fields(type_meta))
    api_version, kind = _text(type_fields.get(1, b"")), _text(type_fields.get(2, b""))
    if (api_version, kind) != ("v1", "Namespace"):
        raise ProtobufError(f"protobuf {api_version}/{kind} is not supported, only v1/Namespace")
    metadata = b""
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            metadata = value
    return {"apiVersion": api_version, "kind": kind, "metadata": _metadata(metadata)}
