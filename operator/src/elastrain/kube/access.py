"""Every API access the operator makes, in one table, so that its RBAC is least privilege.

The chart's rules must grant exactly these and nothing else (``tests/chart/test_chart.py``), and
on the real control plane every request the operator sends is read back from kube-apiserver's
audit log and must be one of them (``tests/rbac_audit.py``, checked after each test module).
Adding an API call means adding its row here, to the chart and to docs/operator.md's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from elastrain.api.kinds import POD, POD_GROUP, SERVICE, TRAINING_JOB

Scope = Literal["namespaced", "cluster"]
# When the access is needed: always, or only with ``--peering`` (cluster-wide operators use
# ClusterKopfPeering, namespaced ones KopfPeering).
When = Literal["always", "peering"]


@dataclass(frozen=True, order=True)
class Access:
    """One (API group, resource[/subresource], verb) an RBAC rule can grant."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


@dataclass(frozen=True)
class Use:
    access: Access
    why: str
    scope: Scope = "namespaced"
    when: When = "always"


def _uses(
    group: str,
    resource: str,
    verbs: str,
    why: str,
    scope: Scope = "namespaced",
    when: When = "always",
) -> list[Use]:
    return [Use(Access(group, resource, verb), why, scope, when) for verb in verbs.split()]


_JOBS, _GROUP = TRAINING_JOB.plural, TRAINING_JOB.group
USES: Final[tuple[Use, ...]] = (
    *_uses(_GROUP, _JOBS, "list watch", "kopf's watch and index of jobs"),
    *_uses(_GROUP, _JOBS, "get", "the ghost sweep confirms a job the index holds is gone"),
    *_uses(_GROUP, _JOBS, "delete", "ttlSecondsAfterFinished (with a uid precondition)"),
    *_uses(_GROUP, f"{_JOBS}/status", "patch", "the status write (merge patch + resourceVersion)"),
    *_uses(
        _GROUP,
        f"{_JOBS}/finalizers",
        "update",
        "never called: children carry blockOwnerDeletion, and clusters with the "
        "OwnerReferencesPermissionEnforcement admission plugin refuse such creates without it",
    ),
    *(
        use
        for kind in (POD, SERVICE, POD_GROUP)
        for use in (
            *_uses(kind.group, kind.plural, "list watch", "kopf's watch and index of children"),
            *_uses(kind.group, kind.plural, "create delete", "the job's children"),
            *_uses(kind.group, kind.plural, "get", "the ghost sweep (elastrain.controller.relist)"),
        )
    ),
    *_uses("", "events", "create patch", "Events (patch bumps a repeated Event's count)"),
    *_uses(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "list watch",
        "kopf notices the PodGroup CRD appearing without a restart",
        scope="cluster",
    ),
    *_uses(
        "kopf.dev",
        "clusterkopfpeerings",
        "list watch patch",
        "kopf peering, cluster-wide",
        scope="cluster",
        when="peering",
    ),
    *_uses(
        "kopf.dev",
        "kopfpeerings",
        "list watch patch",
        "kopf peering, per namespace",
        when="peering",
    ),
)

# Requests the operator sends that are refused by design and handled: kopf lists namespaces to
# expand ``--namespace`` patterns, and without that right falls back to the exact names given.
# Granting it would let a namespaced operator read every namespace of the cluster.
DENIED_BY_DESIGN: Final = frozenset(
    {Access("", "namespaces", "list"), Access("", "namespaces", "watch")}
)


def needed(*, namespaced: bool, peering: bool) -> set[Access]:
    """What an operator run needs: cluster-wide or per namespace, with or without peering."""
    scope: Scope = "namespaced" if namespaced else "cluster"
    return {u.access for u in USES if u.when == "always" or (peering and u.scope == scope)}
