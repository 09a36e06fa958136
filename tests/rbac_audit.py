"""What the operator really asks the API server, read from kube-apiserver's audit log, checked
against the operator's table of API accesses (``elastrain.kube.access``).

The real control plane of the suites writes one JSON line per request of the operator's
ServiceAccount (``AUDIT_POLICY``: Metadata level for the chart's namespace's accounts, nothing
for anyone else). :func:`calls` reads them from a byte offset, so each test module looks at its
own operators only, and :func:`unexpected` names every request outside the table or refused
(the chart grants exactly the table: ``tests/chart``). So the rules and the code's calls are
compared in both directions: the chart against the table statically, the table against what
the code really sends on a real API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elastrain.kube.access import DENIED_BY_DESIGN, USES, Access

OPERATOR_NAMESPACE = "elastrain-system"
AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:{OPERATOR_NAMESPACE}"]
  - level: None
"""


def apiserver_args(policy: Path, log: Path) -> tuple[str, ...]:
    """kube-apiserver flags for the audit log; writes ``policy`` first."""
    policy.write_text(AUDIT_POLICY)
    return (
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log}",
        "--audit-log-format=json",
        # Blocking mode writes each event as its request completes: the log is complete the
        # moment a test reads it.
        "--audit-log-mode=blocking",
    )


@dataclass(frozen=True)
class Call:
    access: Access | None  # None: a non-resource URL (discovery, /version)
    path: str
    code: int


def size(log: Path) -> int:
    """The log's current length: the offset from which a module's calls start."""
    return log.stat().st_size if log.exists() else 0


def calls(log: Path, offset: int = 0) -> list[Call]:
    """Every audited request from ``offset`` on."""
    if not log.exists():
        return []
    out = []
    with log.open("rb") as f:
        f.seek(offset)
        for line in f:
            event: dict[str, Any] = json.loads(line)
            ref = event.get("objectRef")
            access = None
            if ref:
                resource = ref.get("resource", "")
                if ref.get("subresource"):
                    resource += "/" + ref["subresource"]
                access = Access(ref.get("apiGroup", ""), resource, event["verb"])
            code = int((event.get("responseStatus") or {}).get("code") or 0)
            out.append(Call(access, event.get("requestURI", ""), code))
    return out


def granted(rules: Iterable[dict[str, Any]]) -> set[Access]:
    """Every access the rules grant, spelled out (the chart has no wildcards to expand)."""
    return {
        Access(group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def unexpected(seen: Iterable[Call]) -> list[str]:
    """Requests that are not in the table, or that the API server refused (403), except the
    refusals kopf expects and handles (``DENIED_BY_DESIGN``)."""
    table = {use.access for use in USES}
    out = set()
    for call in seen:
        if call.access in DENIED_BY_DESIGN:
            continue
        if call.code == 403:
            out.add(f"{call.access or call.path}: refused (403)")
        elif call.access is not None and call.access not in table:
            out.add(f"{call.access}: not in elastrain.kube.access.USES")
    return sorted(out)


def unseen(seen: Iterable[Call]) -> list[str]:
    """Accesses of the table that no audited request used (a figure, not a failure: some
    paths, such as finalizers, are needed by admission alone)."""
    used = {call.access for call in seen}
    return sorted(str(use.access) for use in USES if use.access not in used)
