"""The one table of the object kinds the operator reads or writes: TrainingJob and its children.

Each kind's API group, version and plural are spelled here and nowhere else: the planner takes
``apiVersion`` from it when it builds a child, the kube layer takes request paths from it, and
the controller takes kopf's watch selectors from it (kuberay keeps such facts in one place too).
Pure data, no kopf or kubernetes imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from elastrain.api import constants as c


@dataclass(frozen=True)
class Kind:
    """One namespaced kind of the Kubernetes API, with the paths of its REST resource."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, else ``<group>/<version>`` (an object's ``apiVersion``)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_prefix(self) -> str:
        """``/api/v1`` for the core group, else ``/apis/<group>/<version>`` (discovery too)."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``: the name of the CustomResourceDefinition that serves the kind."""
        return f"{self.plural}.{self.group}"

    @property
    def selector(self) -> tuple[str, str] | tuple[str, str, str]:
        """The resource as kopf's positional selector: ``(version, plural)`` for the core group."""
        if self.group:
            return (self.group, self.version, self.plural)
        return (self.version, self.plural)

    def in_group_of(self, api_version: object) -> bool:
        """Whether ``api_version`` names this kind's group, at any version."""
        if not isinstance(api_version, str):
            return False
        group, _, version = api_version.rpartition("/")
        return group == self.group and bool(version)

    def collection_path(self, namespace: str) -> str:
        """``/api/v1/namespaces/<ns>/pods`` and the like."""
        return f"{self.api_prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def object_path(self, namespace: str, name: str) -> str:
        """The path of the object ``name`` of this kind in ``namespace``."""
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


TRAINING_JOB: Final = Kind(c.KIND, c.GROUP, c.VERSION, c.PLURAL)
POD: Final = Kind("Pod", "", "v1", "pods")
SERVICE: Final = Kind("Service", "", "v1", "services")
# scheduler-plugins' gang-scheduling unit; served only where its CRD is installed.
POD_GROUP: Final = Kind("PodGroup", "scheduling.x-k8s.io", "v1alpha1", "podgroups")
EVENT: Final = Kind("Event", "", "v1", "events")

# The label that puts a pod into the PodGroup of that name (scheduler-plugins' contract).
LABEL_POD_GROUP: Final = f"{POD_GROUP.group}/pod-group"

# The kinds a TrainingJob creates and owns. Every child carries the job-name label and a
# controller owner reference to its job (the rule is ``elastrain.api.ownership``).
CHILD_KINDS: Final = (POD, SERVICE, POD_GROUP)

_BY_KIND: Final = {k.kind: k for k in (TRAINING_JOB, *CHILD_KINDS, EVENT)}


def by_kind(kind: str) -> Kind:
    """The table entry of ``kind`` (``"Pod"``, ...); KeyError for a kind the operator never uses."""
    return _BY_KIND[kind]
