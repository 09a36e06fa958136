"""Summarise a py-spy profile of the operator (``python -m bench.run --profile DIR``).

    python -m bench.cpu_profile DIR/embedded-growth-300.txt [--top 25]

py-spy's ``raw`` format is one collapsed stack per line with its sample count. The question
the bench asks of it is where the operator's CPU goes *per job*, and how much of that is
Elastrain's own code (``operator/src/elastrain``) rather than kopf, the ``kubernetes``
client, aiohttp or the interpreter, since only our own code is ours to change. So this prints:

* self samples by area (the innermost frame's package): what burns the CPU;
* inclusive samples of Elastrain's functions (each counted once per stack): which of our
  calls lead there, including the library time they cause;
* the top self-sample functions overall.

Percentages are of all samples; py-spy samples only threads that are running, so the total is
CPU time, not wall time.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
AREAS = (
    ("elastrain", "/operator/src/elastrain/"),
    ("kopf", "/kopf/"),
    ("kubernetes client", "/kubernetes/"),
    ("urllib3", "/urllib3/"),
    ("aiohttp", "/aiohttp/"),
    ("prometheus_client", "/prometheus_client/"),
    ("yaml", "/yaml/"),
    ("json", "/json/"),
    ("ssl/socket/http", "/ssl.py"),
    ("ssl/socket/http", "/socket.py"),
    ("ssl/socket/http", "/http/"),
    ("asyncio", "/asyncio/"),
    ("threading/queue", "/threading.py"),
    ("threading/queue", "/concurrent/"),
    ("threading/queue", "/queue.py"),
    ("logging", "/logging/"),
    ("copy/typing/dataclasses", "/copy.py"),
    ("copy/typing/dataclasses", "/typing.py"),
    ("copy/typing/dataclasses", "/dataclasses.py"),
)


def area(file: str) -> str:
    for name, marker in AREAS:
        if marker in file:
            return name
    return "other"


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames outermost first as (function, file:line), samples) per stack."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            m = FRAME.match(raw)
            if m is None:
                continue  # "process ..." and "thread ..." pseudo-frames
            where = m["file"] + (f":{m['line']}" if m["line"] else "")
            frames.append((m["func"], where))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def _short(where: str) -> str:
    for marker in ("/operator/src/", "/site-packages/", "/lib/python3"):
        if marker in where:
            return where.split(marker, 1)[1]
    return where


def summarise(path: Path, top: int = 25, jobs: int | None = None) -> str:
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    by_area: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, n in stacks:
        func, where = frames[-1]
        by_area[area(where)] += n
        self_fn[f"{func} ({_short(where)})"] += n
        seen = set()
        for func, where in frames:
            if "/operator/src/elastrain/" in where:
                key = f"{func} ({_short(where).rsplit(':', 1)[0]})"
                if key not in seen:
                    seen.add(key)
                    ours[key] += n
    lines = [f"{path.name}: {total} samples" + (f", {jobs} jobs" if jobs else "")]
    lines.append("\nself samples by area (innermost frame):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_area.most_common()]
    lines.append("\nElastrain's functions, inclusive (library time they cause included):")
    lines += [f"  {n / total:6.1%}  {key}" for key, n in ours.most_common(top)]
    lines.append("\ntop self-sample functions:")
    lines += [f"  {n / total:6.1%}  {key}" for key, n in self_fn.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_profile")
    parser.add_argument("profile", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.profile:
        print(summarise(path, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
