"""The three patch formats the API server accepts: JSON merge, JSON patch, strategic merge.

Strategic merge is implemented for the built-in kinds from a table of list merge keys (the
``patchMergeKey`` tags of the Go types that clients actually patch): lists with a key merge
element-wise, other lists replace, and the ``$patch`` (delete/replace/merge),
``$deleteFromPrimitiveList/<field>``, ``$retainKeys`` and ``$setElementOrder/<field>``
directives are honoured. Custom resources do not support it (415), as on a real cluster.
"""

from __future__ import annotations

import copy
from typing import Any

from elastrain_sandbox.apiserver.errors import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _walk(doc: Any, path: str) -> tuple[Any, str]:
    """The container holding the last token of ``path``, and that token."""
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    tokens = [_unescape(t) for t in path.split("/")[1:]]
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _patch_failed(f"path {path!r} not found")
            cur = cur[tok]
        elif isinstance(cur, list):
            idx = _index(cur, tok, path, allow_end=False)
            cur = cur[idx]
        else:
            raise _patch_failed(f"path {path!r} not found")
    return cur, tokens[-1]


def _index(lst: list[Any], tok: str, path: str, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(lst)
    if not tok.isdigit():
        raise _patch_failed(f"invalid array index {tok!r} in {path!r}")
    idx = int(tok)
    if idx > len(lst) or (idx == len(lst) and not allow_end):
        raise _patch_failed(f"array index {idx} out of range in {path!r}")
    return idx


def _patch_failed(message: str) -> ApiError:
    # The API server reports JSON patch failures (including a failed ``test``) as 422.
    return ApiError(422, "Invalid", message, details={})


def _get(doc: Any, path: str) -> Any:
    if path == "":
        return doc
    parent, tok = _walk(doc, path)
    if isinstance(parent, dict):
        if tok not in parent:
            raise _patch_failed(f"path {path!r} not found")
        return parent[tok]
    if isinstance(parent, list):
        return parent[_index(parent, tok, path, allow_end=False)]
    raise _patch_failed(f"path {path!r} not found")


def _remove(doc: Any, path: str) -> Any:
    parent, tok = _walk(doc, path)
    if isinstance(parent, dict):
        if tok not in parent:
            raise _patch_failed(f"unable to remove nonexistent key: {tok}")
        return parent.pop(tok)
    if isinstance(parent, list):
        return parent.pop(_index(parent, tok, path, allow_end=False))
    raise _patch_failed(f"path {path!r} not found")


def _add(doc: Any, path: str, value: Any, replace: bool) -> Any:
    if path == "":
        return value
    parent, tok = _walk(doc, path)
    if isinstance(parent, dict):
        if replace and tok not in parent:
            raise _patch_failed(f"replace operation does not apply: doc is missing key: {path}")
        parent[tok] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, tok, path, allow_end=False)] = value
        else:
            parent.insert(_index(parent, tok, path, allow_end=True), value)
    else:
        raise _patch_failed(f"path {path!r} not found")
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 with add/remove/replace/move/copy/test; a failed ``test`` is a 422."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"json patch {kind} operation is missing a value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "test":
            try:
                actual = _get(doc, path)
            except ApiError:
                actual = None
            if actual != op["value"]:
                raise _patch_failed(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed"
                )
        elif kind in ("move", "copy"):
            value = _get(doc, op.get("from", ""))
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, copy.deepcopy(value), replace=False)
        else:
            raise bad_request(f"unexpected json patch operation {kind!r}")
    return doc


# patchMergeKey per field name, from the core/v1 and meta/v1 Go types. Field names are unique
# enough across the built-in kinds the sandbox serves for a flat table to be exact.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
    "taints": "key",
    "addresses": "type",
    "images": "names",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",
}
# Lists merged by port number; their key depends on the parent (service vs container ports).
_PORT_KEYS = {"containerPort", "port"}
# Primitive lists that merge as sets (patchStrategy: merge).
_MERGE_PRIMITIVES = {"finalizers"}


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    if field_name == "ports":
        for item in items:
            if isinstance(item, dict):
                for key in _PORT_KEYS:
                    if key in item:
                        return key
        return "port"
    return MERGE_KEYS.get(field_name)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to a built-in object."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    return _smp_dict(target if isinstance(target, dict) else {}, patch)


def _smp_dict(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    out = dict(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field_name = key.split("/", 1)[1]
            drop = set(map(_hashable, value or []))
            out[field_name] = [v for v in out.get(field_name) or [] if _hashable(v) not in drop]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            cur = out.get(key)
            out[key] = _smp_dict(cur if isinstance(cur, dict) else {}, value)
        elif isinstance(value, list):
            out[key] = _smp_list(key, out.get(key), value)
        else:
            out[key] = value
    if isinstance(retain, list):
        keep = set(retain)
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, (dict, list)) else v


def _smp_list(field_name: str, current: Any, patch: list[Any]) -> list[Any]:
    cur = list(current) if isinstance(current, list) else []
    if field_name in _MERGE_PRIMITIVES:
        seen = set(map(_hashable, cur))
        return cur + [v for v in patch if _hashable(v) not in seen]
    key = _merge_key(field_name, patch + cur)
    if key is None or not all(isinstance(p, dict) for p in patch):
        # A `$patch: replace` element list or an atomic list: replace wholesale.
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch"))]
    if any(p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if p.get("$patch") != "replace"]
    out = [copy.deepcopy(c) for c in cur]
    for item in patch:
        kval = item.get(key)
        idx = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == kval), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_smp_dict({}, item))
        else:
            out[idx] = _smp_dict(out[idx], item)
    return out
