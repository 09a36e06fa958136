"""The resource types the sandbox serves: built-in kinds plus those added by CRDs.

A ``ResourceType`` is everything discovery, routing, storage, tables and admission need to know
about one resource (``pods``, ``trainingjobs.elastrain.dev``...). Storage is keyed by
``(group, plural)`` so that every served version of a CRD reads and writes the same objects
(the sandbox does no version conversion beyond rewriting ``apiVersion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
ResKey = tuple[str, str]  # (group, plural)


@dataclass(frozen=True)
class ScaleSpec:
    """JSON paths of a CRD's scale subresource (``.spec.replicas`` style)."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True)
class ResourceType:
    """One served resource; ``versions`` lists every version it is served under."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False
    extra_subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # The version named in stored objects' apiVersion (a CRD's storage version).
    storage_version: str = field(default="")
    # version -> openAPIV3Schema, published in /openapi/v3 for ``kubectl explain`` (CRDs only).
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> ResKey:
        return (self.group, self.plural)

    @property
    def preferred_version(self) -> str:
        return self.storage_version or self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.preferred_version
        return f"{self.group}/{v}" if self.group else v

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def subresources(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.status_subresource:
            out.append("status")
        if self.scale is not None:
            out.append("scale")
        out.extend(self.extra_subresources)
        return tuple(out)


def _core(
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    extra: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    group: str = "",
    version: str = "v1",
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=(version,),
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        singular=kind.lower(),
        short_names=short,
        status_subresource=status,
        extra_subresources=extra,
        categories=categories,
    )


BUILTIN: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", namespaced=False, short=("ns",), status=True),
    _core(
        "pods",
        "Pod",
        short=("po",),
        status=True,
        extra=("log", "binding", "eviction", "exec", "proxy"),
        categories=("all",),
    ),
    _core("services", "Service", short=("svc",), status=True, categories=("all",)),
    _core("endpoints", "Endpoints", short=("ep",)),
    _core("events", "Event", short=("ev",)),
    _core("configmaps", "ConfigMap", short=("cm",)),
    _core("secrets", "Secret"),
    _core("serviceaccounts", "ServiceAccount", short=("sa",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _core("nodes", "Node", namespaced=False, short=("no",), status=True),
    _core("leases", "Lease", group="coordination.k8s.io"),
    _core("events", "Event", short=("ev",), group="events.k8s.io"),
    _core(
        "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True, group="policy"
    ),
    _core(
        "priorityclasses",
        "PriorityClass",
        namespaced=False,
        short=("pc",),
        group="scheduling.k8s.io",
    ),
    _core(
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
        group="apiextensions.k8s.io",
        categories=("api-extensions",),
    ),
)
