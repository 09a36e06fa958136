"""The API server at the HTTP level: Status errors, discovery, Tables, watch edge cases."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import wait_for


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory, widget_crd: str) -> Iterator[Sandbox]:
    with Sandbox(
        nodes=1, state_dir=tmp_path_factory.mktemp("http-sb"), agent=False, bookmark_interval=0.2
    ) as box:
        box.store.create(
            "customresourcedefinitions.apiextensions.k8s.io", yaml.safe_load(widget_crd)
        )
        yield box


def call(
    sb: Sandbox,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
    accept: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(sb.url + path, data=data, method=method)
    req.add_header("Content-Type", ctype)
    req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw.startswith(b"{") else raw
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_errors_are_status_bodies(sb: Sandbox) -> None:
    code, _, body = call(sb, "GET", "/api/v1/namespaces/default/nothings")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    code, _, body = call(sb, "GET", "/api/v1/namespaces/default/pods/missing")
    assert (
        code == 404
        and body["message"] == 'pods "missing" not found'
        and body["details"]["kind"] == "pods"
    )
    code, _, body = call(sb, "PUT", "/api/v1/namespaces/default/pods", {"metadata": {"name": "x"}})
    assert code == 405 and body["reason"] == "MethodNotAllowed"
    code, _, body = call(sb, "POST", "/api/v1/namespaces/default/configmaps", b"{not json")
    assert code == 400 and body["reason"] == "BadRequest"
    code, _, body = call(
        sb,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"kind": "Pod", "metadata": {"name": "x"}},
    )
    assert code == 400
    code, _, body = call(
        sb,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        {},
        ctype="application/apply-patch+yaml",
    )
    assert code == 415 and body["reason"] == "UnsupportedMediaType"
    call(
        sb,
        "POST",
        "/apis/example.test/v1/namespaces/default/widgets",
        {"metadata": {"name": "w"}, "spec": {}},
    )
    code, _, body = call(
        sb,
        "PATCH",
        "/apis/example.test/v1/namespaces/default/widgets/w",
        {"spec": {"replicas": 99}},
        ctype="application/merge-patch+json",
    )
    assert code == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec"
    code, _, body = call(sb, "GET", "/api/v1/pods?labelSelector=a%20in%20(")
    assert code == 400
    code, _, body = call(sb, "GET", "/api/v1/pods?fieldSelector=spec.unknown%3Dx")
    assert code == 400 and "field label not supported" in body["message"]


def test_aggregated_and_legacy_discovery(sb: Sandbox) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, headers, body = call(sb, "GET", "/apis", accept=accept)
    assert code == 200 and headers["Content-Type"].startswith(
        "application/json;g=apidiscovery.k8s.io;v=v2"
    )
    groups = {i["metadata"]["name"]: i for i in body["items"]}
    widgets = next(
        r for r in groups["example.test"]["versions"][0]["resources"] if r["resource"] == "widgets"
    )
    assert {s["subresource"] for s in widgets["subresources"]} == {"status", "scale"}
    assert widgets["shortNames"] == ["wd"]
    code, headers, body = call(sb, "GET", "/apis")
    assert body["kind"] == "APIGroupList"
    code, _, body = call(sb, "GET", "/apis/example.test/v1")
    names = {r["name"]: r for r in body["resources"]}
    assert (
        names["widgets/scale"]["group"] == "autoscaling"
        and names["widgets/scale"]["kind"] == "Scale"
    )
    code, _, body = call(sb, "GET", "/api/v1")
    assert "pods/log" in {r["name"] for r in body["resources"]}
    code, _, body = call(sb, "GET", "/version")
    assert body["major"] == "1"


def test_table_responses(sb: Sandbox) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _code, _, body = call(sb, "GET", "/api/v1/nodes?includeObject=Object", accept=accept)
    assert body["kind"] == "Table"
    assert [c["name"] for c in body["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
    ]
    assert body["rows"][0]["cells"][:2] == ["node-0", "Ready"]
    assert body["rows"][0]["object"]["kind"] == "Node"


def test_watch_too_old_version_is_an_expired_error_event(tmp_path: Path) -> None:
    with Sandbox(nodes=0, state_dir=tmp_path, agent=False, history=5) as small:
        first = small.store.create("configmaps", {"metadata": {"name": "h"}}, "default")
        for i in range(10):
            small.store.create("configmaps", {"metadata": {"name": f"h{i}"}}, "default")
        rv = first["metadata"]["resourceVersion"]
        url = f"{small.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            event = json.loads(resp.readline())
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
        assert event["object"]["reason"] == "Expired"
        code, _, body = call(small, "GET", "/api/v1/configmaps?limit=2")
        token = body["metadata"]["continue"]
        for i in range(10):
            small.store.create("configmaps", {"metadata": {"name": f"more{i}"}}, "default")
        code, _, body = call(small, "GET", f"/api/v1/configmaps?limit=2&continue={token}")
        assert code == 410 and body["reason"] == "Expired"


def test_watch_sends_bookmarks_when_asked(sb: Sandbox) -> None:
    rv = sb.store.resource_version
    query = f"watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=5"
    url = f"{sb.url}/api/v1/namespaces/default/secrets?{query}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        event = json.loads(resp.readline())
    assert event["type"] == "BOOKMARK" and int(event["object"]["metadata"]["resourceVersion"]) >= rv


def test_request_log_endpoint(sb: Sandbox) -> None:
    start = sb.request_log.seq
    call(sb, "GET", "/api/v1/namespaces/default/pods")
    _code, _, body = call(sb, "GET", f"/sandbox/requests?since={start}")
    first = body["items"][0]
    assert (first["verb"], first["resource"], first["status"]) == ("list", "pods", 200)
    assert first["latency_ms"] >= 0


def test_other_schedulers_pods_are_left_alone_and_can_be_bound(sb: Sandbox) -> None:
    pod = {
        "metadata": {"name": "custom"},
        "spec": {
            "schedulerName": "my-scheduler",
            "containers": [{"name": "c", "image": "busybox"}],
        },
        "status": {"phase": "Running"},
    }
    code, _, created = call(sb, "POST", "/api/v1/namespaces/default/pods", pod)
    assert code == 201 and created["status"]["phase"] == "Pending"  # client status ignored
    # A default-scheduler pod created afterwards is a barrier: once it is bound, the scheduler
    # has seen "custom" too and must have left it alone.
    barrier = {
        "metadata": {"name": "barrier"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    call(sb, "POST", "/api/v1/namespaces/default/pods", barrier)
    wait_for(
        lambda: sb.store.get("pods", "barrier", "default")["spec"].get("nodeName"),
        what="barrier bound",
    )
    assert "nodeName" not in sb.store.get("pods", "custom", "default")["spec"]
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "custom"},
        "target": {"name": "node-0"},
    }
    code, _, _ = call(sb, "POST", "/api/v1/namespaces/default/pods/custom/binding", binding)
    assert code == 201
    code, _, got = call(sb, "GET", "/api/v1/namespaces/default/pods/custom")
    assert got["spec"]["nodeName"] == "node-0"
    assert {"type": "PodScheduled", "status": "True"}.items() <= got["status"]["conditions"][
        0
    ].items()
    code, _, body = call(sb, "POST", "/api/v1/namespaces/default/pods/custom/binding", binding)
    assert code == 409 and "already assigned" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/namespaces/default/configmaps", []),
        ("POST", "/api/v1/namespaces/default/configmaps", {"metadata": []}),
        ("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": 5}}),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "x", "labels": ["a"]}},
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "x", "labels": {"a": 1}}},
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "x", "finalizers": "f"}},
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": "x", "ownerReferences": [{}]}},
        ),
        ("POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "p"}, "spec": []}),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            {"metadata": {"name": "p"}, "spec": {"containers": [5]}},
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services",
            {"metadata": {"name": "s"}, "spec": {"ports": [{"port": "x"}]}},
        ),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root", {"a": 1}),
        (
            "PATCH",
            "/api/v1/namespaces/default/serviceaccounts/default",
            [{"op": "add", "path": "x"}],
        ),
        ("PATCH", "/api/v1/namespaces/default/serviceaccounts/default", ["not-an-op"]),
        (
            "PUT",
            "/api/v1/namespaces/default/serviceaccounts/default",
            {"metadata": {"name": "other"}},
        ),
        ("GET", "/api/v1/namespaces/default/pods?limit=abc", None),
        ("GET", "/api/v1/namespaces/default/pods?continue=garbage", None),
        ("GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=abc", None),
        (
            "DELETE",
            "/api/v1/namespaces/default/serviceaccounts/default?propagationPolicy=Sideways",
            None,
        ),
        ("GET", "/apis/nope.example/v1/things", None),
        ("GET", "/api/v1/namespaces/default/pods/x/exec", None),
    ],
)
def test_bad_requests_get_status_errors_and_the_server_lives(
    sb: Sandbox, method: str, path: str, body: Any
) -> None:
    ctype = (
        "application/json-patch+json"
        if isinstance(body, list) and method == "PATCH"
        else "application/merge-patch+json"
        if method == "PATCH"
        else "application/json"
    )
    code, _, answer = call(sb, method, path, body, ctype=ctype)
    assert 400 <= code < 500, answer
    assert answer["kind"] == "Status" and answer["status"] == "Failure" and answer["code"] == code
    with urllib.request.urlopen(sb.url + "/healthz", timeout=10) as resp:
        assert resp.read() == b"ok"


def test_eviction_marks_disruption_and_deletes(sb: Sandbox) -> None:
    pod = {
        "metadata": {"name": "evictee"},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "busybox"}]},
    }
    call(sb, "POST", "/api/v1/namespaces/default/pods", pod)
    seen: list[dict[str, Any]] = []
    sb.store.add_listener(
        lambda ev: seen.append(ev.obj) if ev.obj["metadata"]["name"] == "evictee" else None
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evictee"}}
    code, _, _ = call(sb, "POST", "/api/v1/namespaces/default/pods/evictee/eviction", eviction)
    assert code == 201
    code, _, _ = call(sb, "GET", "/api/v1/namespaces/default/pods/evictee")
    assert code == 404
    reasons = [
        c.get("reason")
        for o in seen
        for c in o.get("status", {}).get("conditions", [])
        if c["type"] == "DisruptionTarget"
    ]
    assert "EvictionByEvictionAPI" in reasons


def test_watch_list_sends_initial_events_then_the_end_bookmark(sb: Sandbox) -> None:
    call(sb, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "initial"}})
    query = (
        "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )
    url = f"{sb.url}/api/v1/namespaces/default/configmaps?{query}&timeoutSeconds=5"
    events = []
    with urllib.request.urlopen(url, timeout=10) as resp:
        while True:
            ev = json.loads(resp.readline())
            events.append(ev)
            if ev["type"] == "BOOKMARK":
                break
    assert ("ADDED", "initial") in [
        (e["type"], e["object"]["metadata"].get("name")) for e in events
    ]
    annotations = events[-1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_unknown_fields_warn_by_default_and_fail_when_strict(sb: Sandbox) -> None:
    widget = {
        "apiVersion": "example.test/v1",
        "kind": "Widget",
        "metadata": {"name": "extra"},
        "spec": {"size": 3},
    }
    code, _, body = call(
        sb,
        "POST",
        "/apis/example.test/v1/namespaces/default/widgets?fieldValidation=Strict",
        widget,
    )
    assert code == 400 and 'unknown field "spec.size"' in body["message"]
    code, headers, created = call(
        sb, "POST", "/apis/example.test/v1/namespaces/default/widgets", widget
    )
    assert code == 201 and "size" not in created["spec"]  # pruned
    assert headers["Warning"] == '299 - "unknown field \\"spec.size\\""'


def test_watching_one_object_by_name(sb: Sandbox) -> None:
    call(sb, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "solo"}})
    call(sb, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "other"}})
    for path in (
        "/api/v1/namespaces/default/configmaps/solo?watch=1",
        "/api/v1/watch/namespaces/default/configmaps/solo?",
    ):
        with urllib.request.urlopen(f"{sb.url}{path}&timeoutSeconds=1", timeout=10) as resp:
            names = [
                json.loads(line)["object"]["metadata"]["name"] for line in resp.read().splitlines()
            ]
        assert names == ["solo"]


def test_open_watches_are_counted_while_open(sb: Sandbox) -> None:
    start = sb.request_log.seq
    url = f"{sb.url}/api/v1/namespaces/default/endpoints?watch=1&timeoutSeconds=30"
    with urllib.request.urlopen(url, timeout=10):
        watches = wait_for(
            lambda: [r for r in sb.request_log.since(start) if r.verb == "watch"],
            what="the open watch in the request log",
        )
        assert (watches[0].resource, watches[0].status) == ("endpoints", 200)
