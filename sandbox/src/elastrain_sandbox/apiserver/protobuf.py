"""Decoding the protobuf request bodies kubectl sends for a few built-in kinds.

kubectl's typed clients (``kubectl create namespace|configmap|secret|serviceaccount``,
``kubectl drain``'s evictions) send ``application/vnd.kubernetes.protobuf`` bodies and accept
JSON back. The sandbox decodes the Kubernetes envelope (``k8s\\x00`` + ``runtime.Unknown``) and
the object for the kinds below from their ``generated.proto`` field numbers; other kinds get a
415 asking for JSON. Responses are always JSON (kubectl lists it in Accept).
"""

from __future__ import annotations

import base64
from typing import Any

from elastrain_sandbox.apiserver.errors import ApiError

MAGIC = b"k8s\x00"

# A schema maps a field number to (name, type); type is "s" (string), "b" (bytes, base64 in
# JSON), "i" (int), "bool", "ms" (map string->string), "mb" (map string->bytes), a nested
# schema dict, or a 1-tuple (repeated of the type inside).
Schema = dict[int, tuple[str, Any]]

OWNER_REF: Schema = {
    1: ("kind", "s"),
    3: ("name", "s"),
    4: ("uid", "s"),
    5: ("apiVersion", "s"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "s"),
    2: ("generateName", "s"),
    3: ("namespace", "s"),
    5: ("uid", "s"),
    6: ("resourceVersion", "s"),
    7: ("generation", "i"),
    11: ("labels", "ms"),
    12: ("annotations", "ms"),
    13: ("ownerReferences", (OWNER_REF,)),
    14: ("finalizers", ("s",)),
}
OBJECT_REF: Schema = {
    1: ("kind", "s"),
    2: ("namespace", "s"),
    3: ("name", "s"),
    4: ("uid", "s"),
    5: ("apiVersion", "s"),
    6: ("resourceVersion", "s"),
    7: ("fieldPath", "s"),
}
DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "i"),
    2: ("preconditions", {1: ("uid", "s"), 2: ("resourceVersion", "s")}),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "s"),
    5: ("dryRun", ("s",)),
}
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", ("s",))})},
    "ConfigMap": {
        1: ("metadata", OBJECT_META),
        2: ("data", "ms"),
        3: ("binaryData", "mb"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", OBJECT_META),
        2: ("data", "mb"),
        3: ("type", "s"),
        4: ("stringData", "ms"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", OBJECT_META),
        2: ("secrets", (OBJECT_REF,)),
        3: ("imagePullSecrets", ({1: ("name", "s")},)),
        4: ("automountServiceAccountToken", "bool"),
    },
    "Eviction": {1: ("metadata", OBJECT_META), 2: ("deleteOptions", DELETE_OPTIONS)},
    "DeleteOptions": DELETE_OPTIONS,
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        val: Any
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, wire, val))
    return out


def _scalar(kind: str, val: Any) -> Any:
    if kind == "s":
        return bytes(val).decode()
    if kind == "b":
        return base64.b64encode(bytes(val)).decode()
    if kind == "i":
        return val - (1 << 64) if val >= 1 << 63 else val
    if kind == "bool":
        return bool(val)
    raise ValueError(kind)


def _message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, _wire, val in _fields(buf):
        if num not in schema:
            continue
        name, kind = schema[num]
        if kind in ("ms", "mb"):
            entry = {n: v for n, _w, v in _fields(val)}
            key = bytes(entry.get(1, b"")).decode()
            raw = entry.get(2, b"")
            out.setdefault(name, {})[key] = _scalar("s" if kind == "ms" else "b", raw)
        elif isinstance(kind, tuple):
            inner = kind[0]
            item = _message(val, inner) if isinstance(inner, dict) else _scalar(inner, val)
            out.setdefault(name, []).append(item)
        elif isinstance(kind, dict):
            out[name] = _message(val, kind)
        else:
            value = _scalar(kind, val)
            if value not in ("", 0, False):  # Go's omitempty: zero values are absent in JSON
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a Kubernetes protobuf body; 415 for kinds not covered."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body without the k8s envelope")
    try:
        envelope = {n: v for n, _w, v in _fields(body[len(MAGIC) :])}
        type_meta = {n: bytes(v).decode() for n, _w, v in _fields(envelope.get(1, b""))}
        api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        schema = KINDS.get(kind)
        if schema is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the sandbox decodes protobuf only for {', '.join(sorted(KINDS))}; send "
                f"{kind} as application/json",
            )
        obj = _message(envelope.get(2, b""), schema)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "BadRequest", f"error decoding protobuf body: {exc}") from exc
    if api_version:
        obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj
