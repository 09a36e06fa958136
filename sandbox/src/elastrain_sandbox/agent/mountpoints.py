"""Mount points the agent had to create on the host, shared host-wide and removed when unused.

A bind mount needs a target of the same kind (directory or file) on the host, because every
container's mount namespace starts as a copy of the host's. A ``mountPath`` such as ``/ckpt``
or the default ``/dev/termination-log`` usually does not exist there, so the agent creates it,
with any missing parent directory. Left behind, these litter the machine after every test run.

They cannot simply be removed when one pod ends: several pods, of several sandbox instances
(parallel test runs), may use the same path at once, and removing a directory another
container has a mount on detaches that mount. So every created path is recorded host-wide in
``<runtime dir>/mountpoints.json``, under the host lock, with the set of *holders* using it: a
holder is ``<instance tag>:<pod uid>``. A pod holds a path from its first container launch
that needs it until its teardown (all its containers are gone by then). When the last holder
lets go, the path is removed, but only if it is still what the agent created: the same inode,
an empty directory or an empty regular file. Content someone put there, or a path that existed
before, is never removed. Holders whose instance's process is dead are dropped by
:func:`sweep_stale` at every agent start, which then removes the paths nobody holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from elastrain_sandbox.agent.instance import PID_WIDTH, SEQ_WIDTH, InstanceId, host_lock

RECORD = "mountpoints.json"  # no '-': network.sweep_stale treats '*-*' files as slot claims
TAG_WIDTH = PID_WIDTH + SEQ_WIDTH


@dataclass
class _Entry:
    kind: str  # "dir" or "file"
    dev: int
    ino: int
    holders: set[str]


def holder_key(owner: str, uid: str) -> str:
    """The holder name of pod ``uid`` run by the instance tagged ``owner``.

    Runtimes built without an agent (tests) have no owner tag; they hold in the name of
    their process (a sequence number no agent uses before 1295 others), so that the next
    agent's sweep still finds them once the process is gone.
    """
    tag = owner or InstanceId(os.getpid(), 36**SEQ_WIDTH - 1).tag
    return f"{tag}:{uid}"


def _holder_alive(holder: str) -> bool:
    try:
        return InstanceId.parse_tag(holder[:TAG_WIDTH]).alive()
    except ValueError:
        return True  # not ours to judge: keep it


def _load(directory: Path) -> dict[str, _Entry]:
    try:
        raw: dict[str, Any] = json.loads((directory / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for path, e in (raw.get("paths") or {}).items():
        try:
            out[str(path)] = _Entry(
                str(e["kind"]), int(e["dev"]), int(e["ino"]), {str(h) for h in e["holders"]}
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _save(directory: Path, entries: dict[str, _Entry]) -> None:
    """Write the record atomically; no entries, no file (so an idle runtime dir is empty)."""
    path = directory / RECORD
    if not entries:
        path.unlink(missing_ok=True)
        return
    data = {
        "paths": {
            p: {"kind": e.kind, "dev": e.dev, "ino": e.ino, "holders": sorted(e.holders)}
            for p, e in entries.items()
        }
    }
    tmp = directory / f"{RECORD}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _same(path: str, entry: _Entry) -> os.stat_result | None:
    """``path``'s lstat if it is still the object the agent created, else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    kind_ok = stat.S_ISDIR(st.st_mode) if entry.kind == "dir" else stat.S_ISREG(st.st_mode)
    return st if kind_ok and (st.st_dev, st.st_ino) == (entry.dev, entry.ino) else None


def _chain(target: str) -> list[str]:
    """``target`` and its ancestors below ``/``, outermost first."""
    parts = [p for p in PurePosixPath(target).parts if p != "/"]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def claim(holder: str, target: str, directory: bool) -> list[str]:
    """Make sure ``target`` exists (a directory if ``directory``, else an empty file) and hold
    every part of it the agent created; return the paths created by this call.

    Idempotent per holder. Raises ``OSError`` when the host refuses (what was created before
    the refusal stays recorded, held, and goes at the holder's release).
    """
    created: list[str] = []
    with host_lock() as run_dir:
        entries = _load(run_dir)
        try:
            chain = _chain(target)
            for i, path in enumerate(chain):
                last = i == len(chain) - 1
                entry = entries.get(path)
                if entry is not None and _same(path, entry) is None:
                    del entries[path]  # replaced or removed behind our back: not ours now
                    entry = None
                if entry is not None:
                    entry.holders.add(holder)
                    continue
                if os.path.lexists(path):
                    continue  # it was there before: never ours to remove
                if last and not directory:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    os.close(fd)
                    kind = "file"
                else:
                    os.mkdir(path, 0o755)
                    kind = "dir"
                st = os.lstat(path)
                entries[path] = _Entry(kind, st.st_dev, st.st_ino, {holder})
                created.append(path)
        finally:
            _save(run_dir, entries)
    return created


def _release(entries: dict[str, _Entry], drop: set[str] | None, holder: str | None) -> list[str]:
    """Drop holders (``holder``, or all in ``drop``), then remove what nobody holds."""
    for entry in entries.values():
        if holder is not None:
            entry.holders.discard(holder)
        if drop:
            entry.holders -= drop
    removed = []
    for path in sorted(entries, key=lambda p: p.count("/"), reverse=True):
        entry = entries[path]
        if entry.holders:
            continue
        del entries[path]
        st = _same(path, entry)
        if st is None:
            continue
        with contextlib.suppress(OSError):  # ENOTEMPTY: someone else's content, leave it
            if entry.kind == "dir":
                os.rmdir(path)
            elif st.st_size == 0:
                os.unlink(path)
            else:
                continue
            removed.append(path)
    return removed


def release(holder: str) -> list[str]:
    """``holder`` is done (its containers are gone); remove what no one holds any more."""
    with host_lock() as run_dir:
        entries = _load(run_dir)
        if not entries:
            return []
        removed = _release(entries, None, holder)
        _save(run_dir, entries)
    return removed


def release_owner(owner: str) -> list[str]:
    """Release every holder of instance ``owner`` (the agent stops or its process exits)."""
    with host_lock() as run_dir:
        entries = _load(run_dir)
        if not entries:
            return []
        mine = {h for e in entries.values() for h in e.holders if h.startswith(f"{owner}:")}
        removed = _release(entries, mine, None)
        _save(run_dir, entries)
    return removed


def sweep_stale() -> list[str]:
    """Drop the holders of dead instances and remove what no one holds; return what went.

    Runs at every agent start, after the dead instances' container processes were killed.
    """
    with host_lock() as run_dir:
        entries = _load(run_dir)
        if not entries:
            return []
        dead = {h for e in entries.values() for h in e.holders if not _holder_alive(h)}
        removed = _release(entries, dead, None)
        _save(run_dir, entries)
    return removed
