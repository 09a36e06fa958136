"""Reading the demo's jobs, pods and events from the API server (sandbox or real cluster).

The live view polls several times a second, so it uses the Python client in-process instead of
spawning kubectl for every refresh (each kubectl start costs more CPU than the request). Objects
come back as plain JSON dicts, the same shape ``kubectl get -o json`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import urllib3
from elastrain.api import constants as c
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from elastrain_dev.demo.progress import metrics_port

Obj = dict[str, Any]
REQUEST_TIMEOUT = (3.0, 10.0)
# What a request to an unreachable, restarting or refusing API server raises.
API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


class Cluster:
    """The demo namespace as seen through one kubeconfig."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self._api = k8s_config.new_client_from_config(config_file=kubeconfig)
        self._core = k8s.CoreV1Api(self._api)
        self._custom = k8s.CustomObjectsApi(self._api)
        self.namespace = namespace

    def close(self) -> None:
        """Close pooled connections."""
        self._api.close()

    def jobs(self, names: Iterable[str]) -> dict[str, Obj]:
        """The TrainingJobs among ``names`` that exist, by name."""
        wanted = set(names)
        listed: Any = self._custom.list_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.PLURAL, _request_timeout=REQUEST_TIMEOUT
        )
        return {
            item["metadata"]["name"]: item
            for item in listed.get("items", [])
            if item["metadata"]["name"] in wanted
        }

    def pods(self, job_names: Iterable[str]) -> list[Obj]:
        """Every pod of the given jobs (by the operator's job-name label)."""
        selector = f"{c.LABEL_JOB_NAME} in ({','.join(sorted(job_names))})"
        return self._list(self._core.list_namespaced_pod, label_selector=selector)

    def events(self) -> list[Obj]:
        """Every event in the namespace (filtered by the caller: selectors vary by server)."""
        return self._list(self._core.list_namespaced_event)

    def scrape_via_proxy(self, pod: Obj) -> str | None:
        """A pod's ``/metrics`` through the API server's pod proxy (real clusters)."""
        name = f"{pod['metadata']['name']}:{metrics_port(pod)}"
        try:
            response: Any = self._core.connect_get_namespaced_pod_proxy_with_path(
                name,
                self.namespace,
                "metrics",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except API_ERRORS:
            return None
        return str(response.data.decode())

    def _list(self, method: Any, **kwargs: Any) -> list[Obj]:
        response = method(
            self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
        )
        items: list[Obj] = json.loads(response.data).get("items") or []
        return items
