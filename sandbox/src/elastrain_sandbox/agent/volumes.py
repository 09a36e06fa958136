"""Pod volumes as host directories, and the bind mounts that put them at each ``mountPath``.

Nothing is written outside the sandbox's state dir: ``hostPath`` is remapped under
``<state_dir>/hostpath/<path>``; ``persistentVolumeClaim`` is ``<state_dir>/pvc/<ns>/<claim>``,
shared by every pod that mounts the claim (like an RWX volume) and kept after the pods go;
``emptyDir`` and ``configMap``/``secret``/``downwardAPI``/``projected`` files live in the pod's
own dir, removed with the pod.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from elastrain_sandbox.agent.envvars import ConfigError, ObjectLookup, field_value

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Mount:
    """A bind mount: host ``source`` at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class TokenSource:
    """A ``serviceAccountToken`` source of a projected volume: where its file goes and what
    the token is for."""

    volume: str
    path: str
    audience: str | None
    expiration_seconds: int


def token_sources(pod: Obj) -> list[TokenSource]:
    """Every ``serviceAccountToken`` projection of ``pod`` (admission adds one to each pod)."""
    out = []
    for volume in pod.get("spec", {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is not None:
                out.append(
                    TokenSource(
                        str(volume["name"]),
                        str(token.get("path") or "token"),
                        token.get("audience") or None,
                        int(token.get("expirationSeconds") or 3600),
                    )
                )
    return out


def prepare_volumes(
    pod: Obj,
    state_dir: Path,
    pod_dir: Path,
    lookup: ObjectLookup | None,
    tokens: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Path]:
    """Create every volume of ``pod`` on the host; return name -> host path. ``tokens`` holds
    the service-account tokens by (volume, path); a token source without one gets an empty
    file (the embedded control plane mints none)."""
    namespace = str(pod["metadata"].get("namespace", "default"))
    out: dict[str, Path] = {}
    for volume in pod.get("spec", {}).get("volumes") or []:
        name = str(volume["name"])
        if "emptyDir" in volume:
            path = pod_dir / "volumes" / name
        elif "hostPath" in volume:
            path = _under(state_dir / "hostpath", str(volume["hostPath"].get("path", "/")))
            if volume["hostPath"].get("type") in ("File", "FileOrCreate"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                out[name] = path
                continue
        elif "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"]["claimName"])
            path = state_dir / "pvc" / namespace / claim
        elif "configMap" in volume or "secret" in volume:
            path = pod_dir / "volumes" / name
            _write_keyed(volume, namespace, path, lookup)
        elif "projected" in volume:
            path = pod_dir / "volumes" / name
            mine = {p: t for (v, p), t in (tokens or {}).items() if v == name}
            _write_projected(pod, volume["projected"], namespace, path, lookup, mine)
        elif "downwardAPI" in volume:
            path = pod_dir / "volumes" / name
            _write_downward(pod, volume["downwardAPI"].get("items") or [], path)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(f"volume {name!r}: type {kinds} is not supported by the sandbox")
        path.mkdir(parents=True, exist_ok=True)
        out[name] = path
    return out


def _under(root: Path, path: str) -> Path:
    """``path`` re-rooted under ``root``, refusing ``..`` escapes."""
    parts = [p for p in PurePosixPath(path).parts if p not in ("/", "")]
    if ".." in parts:
        raise ConfigError(f"path {path!r} must not contain '..'")
    return root.joinpath(*parts)


def _write_keyed(volume: Obj, namespace: str, path: Path, lookup: ObjectLookup | None) -> None:
    kind, source = (
        ("ConfigMap", volume["configMap"])
        if "configMap" in volume
        else ("Secret", volume["secret"])
    )
    name = str(source.get("name") or source.get("secretName"))
    obj = lookup(kind, namespace, name) if lookup else None
    if obj is None:
        if source.get("optional"):
            return
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    data: dict[str, bytes] = {}
    for k, v in (obj.get("data") or {}).items():
        data[k] = base64.b64decode(v) if kind == "Secret" else str(v).encode()
    for k, v in (obj.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v)
    items = source.get("items")
    files = {str(i["path"]): data[i["key"]] for i in items if i["key"] in data} if items else data
    path.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = _under(path, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _write_projected(
    pod: Obj,
    projected: Obj,
    namespace: str,
    path: Path,
    lookup: ObjectLookup | None,
    tokens: Mapping[str, str],
) -> None:
    """A ``projected`` volume, such as the service-account volume admission adds to every
    pod (``kube-api-access-*``): ConfigMap, Secret and downward-API sources are written as
    for their own volume types. A ``serviceAccountToken`` source gets its token from
    ``tokens`` (by path; the agent on the real control plane mints them), else an empty
    placeholder file."""
    path.mkdir(parents=True, exist_ok=True)
    for source in projected.get("sources") or []:
        if "configMap" in source or "secret" in source:
            _write_keyed(source, namespace, path, lookup)
        elif "downwardAPI" in source:
            _write_downward(pod, source["downwardAPI"].get("items") or [], path)
        elif "serviceAccountToken" in source:
            rel = str(source["serviceAccountToken"].get("path") or "token")
            target = _under(path, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(tokens.get(rel, ""))
        else:
            kinds = sorted(source)
            raise ConfigError(f"projected source {kinds} is not supported by the sandbox")


def _write_downward(pod: Obj, items: list[Obj], path: Path) -> None:
    """Downward-API files (``fieldRef`` only; a ``resourceFieldRef`` item is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    for item in items:
        if "fieldRef" not in item:
            raise ConfigError(f"downwardAPI item {item.get('path')!r}: only fieldRef is supported")
        status = pod.get("status") or {}
        value = field_value(
            pod,
            str(item["fieldRef"]["fieldPath"]),
            pod_ip=str(status.get("podIP") or ""),
            host_ip=str(status.get("hostIP") or ""),
        )
        target = _under(path, str(item["path"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value)


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> list[Mount]:
    """The bind mounts for ``container``'s ``volumeMounts`` (``subPath`` dirs created)."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        name = str(vm["name"])
        if name not in volumes:
            raise ConfigError(f"volumeMount {name!r} names no volume of the pod")
        source = volumes[name]
        if vm.get("subPath"):
            source = _under(source, str(vm["subPath"]))
            if not source.exists():
                source.mkdir(parents=True)
        target = str(vm["mountPath"])
        if not target.startswith("/"):
            raise ConfigError(f"mountPath {target!r} must be absolute")
        mounts.append(Mount(str(source), target, bool(vm.get("readOnly"))))
    return mounts
