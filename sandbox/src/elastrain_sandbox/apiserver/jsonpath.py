"""The JSONPath subset used by CRD printer columns and scale paths.

Supports ``.a.b``, escaped dots (``.metadata.labels.app\\.kubernetes\\.io/name``),
``['key']``, ``[N]``, ``[*]`` and ``[?(@.field=="value")]`` filters, which covers what
``additionalPrinterColumns`` use in practice; anything else finds nothing (an empty cell), as an
unsupported path would on a cluster.
"""

from __future__ import annotations

import re
from typing import Any

_FILTER = re.compile(r"^\?\(@\.([A-Za-z0-9_.]+)\s*(==|!=)\s*['\"]?([^'\"]*)['\"]?\)$")


def _tokens(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    out: list[str] = []
    i = 0
    cur = ""
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            cur += path[i + 1]
            i += 2
            continue
        if ch == ".":
            if cur:
                out.append(cur)
            cur = ""
        elif ch == "[":
            if cur:
                out.append(cur)
            cur = ""
            end = path.index("]", i)
            inner = path[i + 1 : end]
            out.append(
                "[" + inner.strip("'\"") + "]"
                if not inner.startswith(("'", '"'))
                else inner.strip("'\"")
            )
            i = end
        else:
            cur += ch
        i += 1
    if cur:
        out.append(cur)
    return out


def find(obj: Any, path: str) -> list[Any]:
    """All values ``path`` selects in ``obj`` (empty when nothing matches)."""
    values = [obj]
    for tok in _tokens(path):
        nxt: list[Any] = []
        for v in values:
            if tok.startswith("[") and tok.endswith("]"):
                inner = tok[1:-1]
                if not isinstance(v, list):
                    continue
                if inner == "*":
                    nxt.extend(v)
                elif inner.lstrip("-").isdigit():
                    idx = int(inner)
                    if -len(v) <= idx < len(v):
                        nxt.append(v[idx])
                else:
                    m = _FILTER.match(inner)
                    if m:
                        field, op, want = m.groups()
                        for item in v:
                            got = find(item, "." + field)
                            hit = bool(got) and str(got[0]) == want
                            if hit == (op == "=="):
                                nxt.append(item)
            elif isinstance(v, dict) and tok in v:
                nxt.append(v[tok])
        values = nxt
    return values


def get(obj: Any, path: str) -> Any:
    found = find(obj, path)
    return found[0] if found else None


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set a plain dotted path (scale's specReplicasPath), creating maps on the way."""
    toks = _tokens(path)
    cur = obj
    for tok in toks[:-1]:
        nxt = cur.get(tok)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[tok] = nxt
        cur = nxt
    cur[toks[-1]] = value
