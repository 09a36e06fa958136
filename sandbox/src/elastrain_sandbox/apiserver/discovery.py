"""Discovery documents: legacy (``/api``, ``/apis``, ``/apis/<g>/<v>``) and aggregated (v2).

kubectl 1.37 asks ``/api`` and ``/apis`` for ``APIGroupDiscoveryList`` (apidiscovery.k8s.io/v2)
and only falls back to one request per group-version when the server answers plain JSON; the
sandbox serves both, built from the live resource registry on every request so a CRD shows up
(and disappears) immediately.
"""

from __future__ import annotations

from typing import Any

from elastrain_sandbox.apiserver.resources import ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUB_KINDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # subresource -> (group, version, kind, verbs)
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "log": ("", "v1", "Pod", ("get",)),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "exec": ("", "", "PodExecOptions", ("create", "get")),
    "proxy": ("", "", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
}


def _aliases(rt: ResourceType) -> dict[str, list[str]]:
    """``shortNames`` and ``categories``, only when set: both discovery formats carry them
    the same way (kubectl resolves ``po`` and ``all`` from either)."""
    out: dict[str, list[str]] = {}
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.categories:
        out["categories"] = list(rt.categories)
    return out


def _groups(types: list[ResourceType]) -> dict[str, dict[str, list[ResourceType]]]:
    """group -> version -> types, in a stable order (core first, then built-ins, then CRDs)."""
    out: dict[str, dict[str, list[ResourceType]]] = {}
    for rt in sorted(types, key=lambda t: (t.custom, t.group != "", t.group, t.plural)):
        for v in rt.versions:
            out.setdefault(rt.group, {}).setdefault(v, []).append(rt)
    return out


def _sorted_versions(versions: list[str]) -> list[str]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""

    def prio(v: str) -> tuple[int, int, int]:
        import re

        m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
        if not m:
            return (3, 0, 0)
        major, tier, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
        return ({None: 0, "beta": 1, "alpha": 2}[tier], -major, -minor)

    return sorted(versions, key=prio)


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group_list(types: list[ResourceType]) -> dict[str, Any]:
    groups = []
    for group, versions in _groups(types).items():
        if not group:
            continue
        ordered = _sorted_versions(list(versions))
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(types: list[ResourceType], group: str) -> dict[str, Any] | None:
    versions = _groups(types).get(group)
    if not versions:
        return None
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in _sorted_versions(list(versions))]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def _verbs(rt: ResourceType) -> list[str]:
    return sorted(rt.verbs)


def resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """``APIResourceList`` for one group-version."""
    members = _groups(types).get(group, {}).get(version)
    if not members:
        return None
    resources: list[dict[str, Any]] = []
    for rt in members:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _verbs(rt),
            **_aliases(rt),
        }
        resources.append(entry)
        for sub in rt.subresources:
            g, v, kind, verbs = _SUB_KINDS[sub]
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind or rt.kind,
                "verbs": list(verbs),
            }
            if g:
                sub_entry["group"] = g
            if v and (g or sub == "log"):
                sub_entry["version"] = v
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def aggregated(types: list[ResourceType], core: bool, api_version: str) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (core=True) or ``/apis``."""
    items = []
    for group, versions in _groups(types).items():
        if (group == "") != core:
            continue
        out_versions = []
        for v in _sorted_versions(list(versions)):
            resources = []
            for rt in versions[v]:
                res: dict[str, Any] = {
                    "resource": rt.plural,
                    "responseKind": {"group": group, "version": v, "kind": rt.kind},
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "singularResource": rt.singular,
                    "verbs": _verbs(rt),
                    **_aliases(rt),
                }
                subs = []
                for sub in rt.subresources:
                    g, sv, kind, verbs = _SUB_KINDS[sub]
                    subs.append(
                        {
                            "subresource": sub,
                            "responseKind": {
                                "group": g if kind else group,
                                "version": sv or v,
                                "kind": kind or rt.kind,
                            },
                            "verbs": list(verbs),
                        }
                    )
                if subs:
                    res["subresources"] = subs
                resources.append(res)
            out_versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group} if group else {}, "versions": out_versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{api_version}",
        "metadata": {},
        "items": items,
    }
