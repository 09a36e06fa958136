"""``python -m elastrain_dev.validate_chart HELM_BIN CHART_DIR``: render and validate the chart.

``helm lint`` checks templates and values but not what they produce. This renders the chart
with several value sets (all namespaces, watched namespaces, peering both ways, a ServiceMonitor,
externally managed RBAC) and checks every manifest, CRDs included, against the Kubernetes
OpenAPI schema of a current release in strict mode (unknown fields are errors), custom
resources against the CRDs rendered beside them, and the cross-object checks of
``chart_checks``. Exits 1, listing every problem, if anything is wrong; ``make lint`` runs it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from elastrain_sandbox.validation import CompiledSchema, SchemaError

from elastrain_dev import chart_checks

Obj = dict[str, Any]
NAMESPACE = "elastrain-system"

VALUE_SETS: dict[str, Obj] = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "peering-cluster": {"peering": {"enabled": True}},
    "peering-namespaced": {"watchNamespaces": ["team-a"], "peering": {"enabled": True}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"a": "b"}}}},
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True}},
        "trainerMetrics": {"podMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
        "operator": {"progressInterval": 30, "stallAfter": 0},
    },
    "external-rbac": {
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "platform-operator"},
        "metrics": {"service": {"enabled": False}},
        "operator": {
            "logFormat": "plain",
            "verbose": True,
            "workers": 8,
            "extraArgs": ["--kube-qps=50"],
        },
        "peering": {"enabled": True},
    },
}


def render(helm: str, chart: Path, values: Obj) -> list[Obj]:
    """``helm template`` with CRDs and hooks; raise RuntimeError with helm's message on failure."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        cmd = [helm, "template", "elastrain", str(chart), "--namespace", NAMESPACE]
        cmd += ["--include-crds", "--values", f.name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"helm exited {proc.returncode}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


# Kinds whose CRDs come from other projects: no schema here, chart_checks covers their wiring.
EXTERNAL_KINDS = {
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
}


def _validate_custom(doc: Obj, crds: list[Obj]) -> list[str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    if (group, doc["kind"]) in EXTERNAL_KINDS:
        return []
    for crd in crds:
        spec = crd["spec"]
        if spec["group"] == group and spec["names"]["kind"] == doc["kind"]:
            try:
                schema = CompiledSchema.from_crd(crd, version)
            except SchemaError as exc:
                return [f"CRD {crd['metadata']['name']}: {exc}"]
            # ObjectMeta is the API server's generic business, not the CRD schema's.
            decoded = {**schema.prepare(doc), "metadata": doc["metadata"]}
            causes = [str(c) for c in schema.validate(decoded)]
            pruned = [p for p in schema.pruned_fields(doc) if not p.startswith("metadata.")]
            causes += [f"{p}: unknown field" for p in pruned]
            return [f"{chart_checks.describe(doc)}: {c}" for c in causes]
    return [f"{chart_checks.describe(doc)}: no schema for {doc['apiVersion']} {doc['kind']}"]


def validate_manifests(docs: list[Obj], kube_version: str, *, expect_sa: bool) -> list[str]:
    """Every problem with one rendered value set."""
    errors: list[str] = []
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            errors.append(f"not a Kubernetes object: {str(doc)[:80]}")
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.extend(_validate_custom(doc, crds))
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "<root>"
            errors.append(f"{chart_checks.describe(doc)}: {where}: {exc.message}")
    if errors:
        return errors
    for crd in crds:
        for version in crd["spec"]["versions"]:
            try:
                CompiledSchema.from_crd(crd, version["name"])
            except SchemaError as exc:
                errors.append(f"CRD {crd['metadata']['name']}: {exc}")
    errors += chart_checks.check_namespaces(docs)
    errors += chart_checks.check_references(docs, expect_service_account=expect_sa)
    errors += chart_checks.check_services(docs)
    errors += chart_checks.check_service_monitors(docs)
    for deploy in (d for d in docs if d["kind"] == "Deployment"):
        errors += chart_checks.check_deployment(deploy)
    return errors


def main(argv: Sequence[str] | None = None) -> int:
    """Validate every value set; print one line per set and every error; return 0 or 1."""
    parser = argparse.ArgumentParser(prog="validate_chart", description=__doc__.splitlines()[0])
    parser.add_argument("helm", help="path to the helm binary")
    parser.add_argument("chart", type=Path, help="chart directory")
    parser.add_argument(
        "--kube-version",
        default=kubernetes_validate.latest_version(),
        help="Kubernetes version whose schemas are used (default: newest known)",
    )
    args = parser.parse_args(argv)
    failed = False
    for name, values in VALUE_SETS.items():
        try:
            docs = render(args.helm, args.chart, values)
        except (RuntimeError, OSError, subprocess.TimeoutExpired, yaml.YAMLError) as exc:
            print(f"FAIL {name}: helm template failed: {exc}", file=sys.stderr)
            failed = True
            continue
        expect_sa = values.get("serviceAccount", {}).get("create", True)
        errors = validate_manifests(docs, args.kube_version, expect_sa=expect_sa)
        if errors:
            failed = True
            print(f"FAIL {name}: {len(errors)} problem(s)", file=sys.stderr)
            for error in errors:
                print(f"  {error}", file=sys.stderr)
        else:
            kinds = sorted({d["kind"] for d in docs})
            print(
                f"ok   {name}: {len(docs)} manifests valid for Kubernetes "
                f"{args.kube_version} ({', '.join(kinds)})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
