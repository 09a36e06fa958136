"""The real kubectl (v1.37) against the sandbox: what a user of a cluster would see."""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from elastrain_sandbox.embedded import Sandbox
from sandbox_fixtures import Kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(nodes=2, state_dir=tmp_path_factory.mktemp("kubectl-sb"), agent=False) as box:
        yield box


@pytest.fixture(scope="module")
def k(sb: Sandbox, widget_crd: str) -> Iterator[Kubectl]:
    kc = Kubectl(sb)
    kc("apply", "-f", "-", input=widget_crd)
    try:
        yield kc
    finally:
        kc.close()


@pytest.fixture
def ns(k: Kubectl, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:50].strip("-")
    k("create", "namespace", name)
    return name


def test_crd_serves_its_resource_with_printer_columns(
    widget: Callable[..., str], k: Kubectl, ns: str
) -> None:
    k("apply", "-n", ns, "-f", "-", input=widget("w1", replicas=2))
    out = k("get", "wd", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "REPLICAS", "PHASE", "AGE"]
    assert out[1].split()[:2] == ["w1", "2"]
    wide = k("get", "widgets.example.test", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "REPLICAS", "PHASE", "COLOR", "AGE"]
    obj = json.loads(k("get", "widget", "w1", "-n", ns, "-o", "json").stdout)
    assert obj["spec"] == {"replicas": 2, "color": "red", "maxReplicas": 10}  # schema default
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    crd = json.loads(k("get", "crd", "widgets.example.test", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert "widgets" in k("api-resources", "--api-group=example.test").stdout
    assert "FIELD: replicas <integer>" in k("explain", "widgets.spec.replicas").stdout


def test_invalid_objects_are_rejected_with_field_messages(
    widget: Callable[..., str], k: Kubectl, ns: str
) -> None:
    bad_enum = k("apply", "-n", ns, "-f", "-", input=widget("w2", color="green"), check=False)
    assert bad_enum.returncode == 1
    assert 'spec.color: Unsupported value: "green"' in bad_enum.stderr
    bad_cel = k("apply", "-n", ns, "-f", "-", input=widget("w3", replicas=50), check=False)
    assert "replicas must not exceed maxReplicas" in bad_cel.stderr
    unknown = k(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input=widget("w4").replace("color: red", "color: red, size: 3"),
        check=False,
    )
    assert 'unknown field "spec.size"' in unknown.stderr  # --validate=strict is kubectl's default
    bad_pod = k(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        check=False,
        input="apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Pod}\nspec: {containers: []}\n",
    )
    assert 'The Pod "Bad_Pod" is invalid' in bad_pod.stderr
    assert "spec.containers: Required value" in bad_pod.stderr
    assert "metadata.name: Invalid value" in bad_pod.stderr
    assert k("get", "wd", "-n", ns, "-o", "name").stdout == ""


def test_scale_and_merge_and_json_patches(widget: Callable[..., str], k: Kubectl, ns: str) -> None:
    k("apply", "-n", ns, "-f", "-", input=widget("w1", replicas=2))
    k("scale", "widget", "w1", "-n", ns, "--replicas=5")
    scale = json.loads(
        k("get", "widget", "w1", "-n", ns, "--subresource=scale", "-o", "json").stdout
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    k("patch", "widget", "w1", "-n", ns, "--type=merge", "-p", '{"spec":{"color":"blue"}}')
    k(
        "patch",
        "widget",
        "w1",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":3}]',
    )
    obj = json.loads(k("get", "widget", "w1", "-n", ns, "-o", "json").stdout)
    assert obj["spec"]["color"] == "blue" and obj["spec"]["replicas"] == 3
    assert obj["metadata"]["generation"] == 4
    failed = k(
        "patch",
        "widget",
        "w1",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"test","path":"/spec/replicas","value":9}]',
        check=False,
    )
    assert failed.returncode == 1
    strategic = k("patch", "widget", "w1", "-n", ns, "-p", '{"spec":{"color":"red"}}', check=False)
    assert strategic.returncode == 1
    assert (
        "strategic-merge-patch+json is not supported by example.test/v1, Kind=Widget"
        in strategic.stderr
    )
    k(
        "patch",
        "widget",
        "w1",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running","replicas":3}}',
    )
    row = k("get", "wd", "w1", "-n", ns, "--no-headers").stdout.split()
    assert row[:3] == ["w1", "3", "Running"]


def test_strategic_merge_patch_on_a_pod_merges_by_key(k: Kubectl, ns: str) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: a}}\nspec:\n  containers:\n"
        "  - {name: main, image: busybox, env: [{name: A, value: '1'}]}\n"
        "  - {name: side, image: busybox}\n"
    )
    k("apply", "-n", ns, "-f", "-", input=pod)
    k(
        "patch",
        "pod",
        "p",
        "-n",
        ns,
        "-p",
        '{"spec":{"containers":[{"name":"main","image":"busybox:1.36"}]}}',
    )
    obj = json.loads(k("get", "pod", "p", "-n", ns, "-o", "json").stdout)
    main, side = obj["spec"]["containers"]
    assert main["image"] == "busybox:1.36" and side["name"] == "side"
    assert main["env"] == [{"name": "A", "value": "1"}]
    # Anything but images is immutable on a pod, as on a cluster.
    env = k(
        "patch",
        "pod",
        "p",
        "-n",
        ns,
        "-p",
        '{"spec":{"containers":[{"name":"main","env":[{"name":"B","value":"2"}]}]}}',
        check=False,
    )
    assert "Forbidden: pod updates may not change fields" in env.stderr
    svc = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
        "spec: {selector: {app: a}, ports: [{name: a, port: 80}]}\n"
    )
    k("apply", "-n", ns, "-f", "-", input=svc)
    k("patch", "svc", "s", "-n", ns, "-p", '{"spec":{"ports":[{"name":"b","port":81}]}}')
    ports = json.loads(k("get", "svc", "s", "-n", ns, "-o", "json").stdout)["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("a", 80), ("b", 81)]
    k("patch", "pod", "p", "-n", ns, "-p", '{"metadata":{"labels":{"app":null,"tier":"x"}}}')
    labels = json.loads(k("get", "pod", "p", "-n", ns, "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"tier": "x"}


def test_get_by_label_and_watch(widget: Callable[..., str], k: Kubectl, ns: str) -> None:
    k(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input=widget("a", labels="app: demo") + "---" + widget("b", labels="app: other"),
    )
    assert k("get", "wd", "-n", ns, "-l", "app=demo", "-o", "name").stdout.split() == [
        "widget.example.test/a"
    ]
    assert k("get", "wd", "-n", ns, "-l", "app in (demo,other)", "-o", "name").stdout.split() == [
        "widget.example.test/a",
        "widget.example.test/b",
    ]
    proc = k.popen(
        "get", "wd", "-n", ns, "-l", "app=demo", "-w", "--output-watch-events", "--no-headers"
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=20)
        assert first.split()[:2] == ["ADDED", "a"]
        k("scale", "wd", "a", "-n", ns, "--replicas=7")
        modified = lines.get(timeout=20)
        assert modified.split()[:3] == ["MODIFIED", "a", "7"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_describe_shows_scheduling_events(k: Kubectl, ns: str) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: greedy}\nspec:\n  containers:\n"
        "  - name: main\n    image: busybox\n    resources: {limits: {nvidia.com/gpu: 1}}\n"
    )
    k("apply", "-n", ns, "-f", "-", input=pod)

    def described() -> str | None:
        out = k("describe", "pod", "greedy", "-n", ns).stdout
        return out if "FailedScheduling" in out else None

    out = wait_for(described, what="FailedScheduling in describe")
    assert "0/2 nodes are available: 2 Insufficient nvidia.com/gpu." in out
    assert "PodScheduled   False" in out
    table = k("get", "pods", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:3] == ["greedy", "0/1", "Pending"]


def _owned_configmap(name: str, owner: dict[str, str], block: bool) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {
                        "apiVersion": "example.test/v1",
                        "kind": "Widget",
                        "name": owner["name"],
                        "uid": owner["uid"],
                        "blockOwnerDeletion": block,
                    }
                ],
            },
        }
    )


@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_delete_cascades_to_dependents(
    widget: Callable[..., str], k: Kubectl, ns: str, cascade: str
) -> None:
    k("apply", "-n", ns, "-f", "-", input=widget("owner"))
    uid = k("get", "wd", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    for i in range(3):
        k(
            "apply",
            "-n",
            ns,
            "-f",
            "-",
            input=_owned_configmap(f"dep-{i}", {"name": "owner", "uid": uid}, block=True),
        )
    k(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input=_owned_configmap("orphan-to-be", {"name": "gone", "uid": "no-such-uid"}, block=False),
    )
    k("delete", "wd", "owner", "-n", ns, f"--cascade={cascade}")
    if cascade == "foreground":
        # kubectl waited for the owner, which foreground deletion keeps until its blocking
        # dependents are gone: nothing may be left by now (the orphan went in the background).
        remaining = k("get", "cm", "-n", ns, "-o", "name").stdout.split()
        assert not [r for r in remaining if r.startswith("configmap/dep-")]
    wait_for(
        lambda: k("get", "cm", "-n", ns, "-o", "name").stdout.strip() == "",
        what="dependents deleted",
    )


def test_namespace_deletion_removes_its_content(widget: Callable[..., str], k: Kubectl) -> None:
    k("create", "namespace", "doomed")
    k("create", "configmap", "c", "--from-literal=a=b", "-n", "doomed")
    k("create", "secret", "generic", "s", "--from-literal=a=b", "-n", "doomed")
    k("apply", "-n", "doomed", "-f", "-", input=widget("w"))
    k("delete", "namespace", "doomed", "--timeout=30s")
    missing = k("get", "namespace", "doomed", check=False)
    assert missing.returncode == 1 and 'namespaces "doomed" not found' in missing.stderr


def test_trainingjob_crd_applies_and_is_served(k: Kubectl) -> None:
    crd = REPO / "crds" / "trainingjobs.elastrain.dev.yaml"
    if not crd.exists():
        pytest.skip("crds/trainingjobs.elastrain.dev.yaml is not generated yet")
    k("apply", "-f", str(crd))
    assert "trainingjobs" in k("api-resources", "--api-group=elastrain.dev", "-o", "name").stdout
    empty = k("get", "tj", "-A")
    assert "No resources found" in empty.stderr


def test_deleting_a_crd_deletes_its_objects_and_stops_serving(k: Kubectl, widget_crd: str) -> None:
    gadgets = (
        widget_crd.replace("widgets", "gadgets")
        .replace("widget", "gadget")
        .replace("Widget", "Gadget")
        .replace("[wd]", "[gd]")
    )
    k("apply", "-f", "-", input=gadgets)
    manifest = (
        "apiVersion: example.test/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {replicas: 1}\n"
    )
    k("apply", "-f", "-", input=manifest)
    assert k("get", "gadgets", "-o", "name").stdout.split() == ["gadget.example.test/g"]
    k("delete", "crd", "gadgets.example.test", "--timeout=30s")
    gone = k("get", "gadgets", check=False)
    assert gone.returncode == 1
    # With kubectl's discovery cache still holding gadgets, the list itself is the 404.
    assert (
        'the server doesn\'t have a resource type "gadgets"' in gone.stderr
        or "the server could not find the requested resource" in gone.stderr
    )
    k("apply", "-f", "-", input=gadgets)  # recreated: served again, and empty
    assert k("get", "gadgets", "-o", "name").stdout == ""


def test_orphan_deletion_keeps_dependents_without_the_owner_reference(
    widget: Callable[..., str], k: Kubectl, ns: str
) -> None:
    k("apply", "-n", ns, "-f", "-", input=widget("owner"))
    uid = k("get", "wd", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    dep = _owned_configmap("kept", {"name": "owner", "uid": uid}, block=True)
    k("apply", "-n", ns, "-f", "-", input=dep)
    k("delete", "wd", "owner", "-n", ns, "--cascade=orphan")  # waits for the owner to go
    assert k("get", "wd", "-n", ns, "-o", "name").stdout == ""
    kept = json.loads(k("get", "cm", "kept", "-n", ns, "-o", "json").stdout)
    assert "ownerReferences" not in kept["metadata"]
