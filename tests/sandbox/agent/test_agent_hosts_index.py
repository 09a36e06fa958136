"""The node agent's hosts index (``hosts.NamespaceHosts``) against a reference written straight
from the rules, on hypothesis-generated namespaces.

The index exists for speed: at 200 jobs in one namespace, computing each pod's file from the
raw lists took the node agent tens of seconds per refresh and starved the embedded API server
(a ``kubectl scale`` timed out in the API-fault soak). Its shortcuts (a service's entries
shared by the pods it does not select, one peer list for pods of a served subdomain) must give
every pod exactly the file the rules call for, in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from elastrain_sandbox.agent import hosts
from hypothesis import given, settings
from hypothesis import strategies as st

Obj = Mapping[str, Any]
NAMES = ("a", "b", "c")
LABELS = st.dictionaries(st.sampled_from(("job", "role")), st.sampled_from(NAMES), max_size=2)


def _live(p: Obj) -> bool:
    status, meta = p.get("status") or {}, p["metadata"]
    return status.get("phase") in (None, "Pending", "Running") and not meta.get("deletionTimestamp")


def _ready(p: Obj) -> bool:
    conditions = (p.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _selects(selector: Mapping[str, str], p: Obj) -> bool:
    labels = p["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def reference(
    pod: Obj, pod_ip: str, pods: Sequence[Obj], services: Sequence[Obj]
) -> list[hosts.HostEntry]:
    """kube-dns's answers as a list, rule by rule, with no shortcut."""
    ns = pod["metadata"]["namespace"]
    subdomain = pod["spec"].get("subdomain")
    out = [hosts.HostEntry(pod_ip, hosts.pod_names(hosts.pod_hostname(pod), subdomain, ns))]
    peers = [
        p
        for p in pods
        if p["metadata"]["namespace"] == ns
        and p["metadata"]["uid"] != pod["metadata"]["uid"]
        and (p.get("status") or {}).get("podIP")
        and _live(p)
    ]
    headless = sorted(
        (
            s
            for s in services
            if s["spec"].get("clusterIP") == "None" and s["metadata"]["namespace"] == ns
        ),
        key=lambda s: s["metadata"]["name"],
    )
    domains = {s["metadata"]["name"] for s in headless} | ({subdomain} if subdomain else set())
    for p in sorted(peers, key=lambda p: p["metadata"]["name"]):
        if p["spec"].get("subdomain") in domains:
            names = hosts.pod_names(hosts.pod_hostname(p), p["spec"]["subdomain"], ns)
            out.append(hosts.HostEntry(p["status"]["podIP"], names))
    for svc in headless:
        spec = svc["spec"]
        members = [(p, p["status"]["podIP"]) for p in peers if _selects(spec["selector"], p)]
        if _selects(spec["selector"], pod) and _live(pod):
            members.append((pod, pod_ip))
        ok = [ip for p, ip in members if spec.get("publishNotReadyAddresses") or _ready(p)]
        names = hosts.service_names(svc["metadata"]["name"], ns)
        out.extend(hosts.HostEntry(ip, names) for ip in sorted(set(ok)))
    return out


@st.composite
def pods(draw: st.DrawFn, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        status: dict[str, Any] = {
            "phase": draw(st.sampled_from((None, "Pending", "Running", "Succeeded", "Failed"))),
            "conditions": [{"type": "Ready", "status": draw(st.sampled_from(("True", "False")))}],
        }
        if ip := draw(st.sampled_from((None, "10.0.0.1", "10.0.0.2", f"10.1.0.{i}"))):
            status["podIP"] = ip
        meta: dict[str, Any] = {
            "name": draw(st.sampled_from((f"p{i}", "same-name"))),
            "namespace": draw(st.sampled_from(("ns", "ns", "other"))),
            # Now and then a uid twice: one API server never lists one so, the index copes.
            "uid": draw(st.sampled_from((f"uid-{i}", f"uid-{i}", "uid-twice"))),
            "labels": draw(LABELS),
        }
        if draw(st.booleans()) and draw(st.booleans()):
            meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
        spec: dict[str, Any] = {}
        if subdomain := draw(st.sampled_from((None, "", *NAMES, "unserved"))):
            spec["subdomain"] = subdomain
        if draw(st.booleans()):
            spec["hostname"] = f"h{i}"
        out.append({"metadata": meta, "spec": spec, "status": status})
    return out


SERVICES = st.lists(
    st.fixed_dictionaries(
        {
            "metadata": st.fixed_dictionaries(
                {"name": st.sampled_from(NAMES), "namespace": st.sampled_from(("ns", "other"))}
            ),
            "spec": st.fixed_dictionaries(
                {
                    "clusterIP": st.sampled_from(("None", "None", "10.96.0.9")),
                    "selector": LABELS,
                    "publishNotReadyAddresses": st.booleans(),
                }
            ),
        }
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(everyone=st.integers(1, 8).flatmap(pods), services=SERVICES, data=st.data())
def test_every_pod_gets_the_file_the_rules_call_for(
    everyone: list[dict[str, Any]], services: list[dict[str, Any]], data: st.DataObject
) -> None:
    index = hosts.NamespaceHosts("ns", everyone, services)
    for pod in everyone:
        if pod["metadata"]["namespace"] != "ns":
            continue
        # The agent's own address for the pod: usually the one in its status, not always.
        pod_ip = data.draw(st.sampled_from(("10.0.0.2", pod["status"].get("podIP") or "10.9.9.9")))
        assert index.entries(pod, pod_ip) == reference(pod, pod_ip, everyone, services)
    # A listed pod as another copy says it is now (its labels changed since the listing).
    listed = data.draw(st.sampled_from(everyone))
    if listed["metadata"]["namespace"] == "ns":
        relabeled = {**listed, "metadata": {**listed["metadata"], "labels": data.draw(LABELS)}}
        assert index.entries(relabeled, "10.0.0.1") == reference(
            relabeled, "10.0.0.1", everyone, services
        )
    # A listed pod as a copy with another status says it is (phase, readiness, IP, deletion).
    listed = data.draw(st.sampled_from(everyone))
    if listed["metadata"]["namespace"] == "ns":
        newer = {**listed, "status": data.draw(pods(1))[0]["status"]}
        assert index.entries(newer, "10.0.0.2") == reference(newer, "10.0.0.2", everyone, services)
    # A pod the index has not seen (the agent's own copy, before the API lists it).
    stranger = data.draw(pods(1))[0]
    stranger["metadata"].update(namespace="ns", uid="uid-new")
    assert index.entries(stranger, "10.2.0.1") == reference(
        stranger, "10.2.0.1", everyone, services
    )


def test_a_pod_that_left_a_service_is_not_among_its_endpoints_in_its_own_file() -> None:
    """The agent's copy of a pod can be newer than the listing: relabeled out of a service,
    it must not see its own listed address among that service's endpoints."""
    status = {"phase": "Running", "podIP": "10.0.0.5", "conditions": []}
    listed: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"job": "a"}},
        "spec": {"subdomain": "a"},
        "status": status,
    }
    svc: dict[str, Any] = {
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {"clusterIP": "None", "selector": {"job": "a"}, "publishNotReadyAddresses": True},
    }
    index = hosts.NamespaceHosts("ns", [listed], [svc])
    assert [e.ip for e in index.entries(listed, "10.0.0.5") if "a.ns.svc" in e.names] == [
        "10.0.0.5"
    ]
    relabeled = {**listed, "metadata": {**listed["metadata"], "labels": {"job": "b"}}}
    assert not [e for e in index.entries(relabeled, "10.0.0.5") if "a.ns.svc" in e.names]
    assert index.entries(relabeled, "10.0.0.5") == reference(relabeled, "10.0.0.5", [listed], [svc])
    # Its readiness counts as its own copy says, where the service wants ready endpoints only.
    strict = {**svc, "spec": {**svc["spec"], "publishNotReadyAddresses": False}}
    ready = {"type": "Ready", "status": "True"}
    listed["status"] = {**status, "conditions": [ready]}
    index = hosts.NamespaceHosts("ns", [listed], [strict])
    unready = {**listed, "status": {**status, "conditions": [{**ready, "status": "False"}]}}
    assert not [e for e in index.entries(unready, "10.0.0.5") if "a.ns.svc" in e.names]
    assert index.entries(unready, "10.0.0.5") == reference(unready, "10.0.0.5", [listed], [strict])
