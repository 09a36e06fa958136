"""The operator's Kubernetes client: the official ``kubernetes`` package, used as a raw REST client.

Decisions, and why:

* **Official client, raw requests.** Authentication, TLS, kubeconfig and in-cluster loading come
  from the ``kubernetes`` package, but requests go through ``ApiClient.call_api`` with plain
  JSON. The generated per-resource methods validate every argument with pydantic and
  deserialise every response into models; for an operator that creates thousands of pods this
  costs more CPU than the reconcile itself, and the planner speaks dicts anyway.
* **Off the event loop.** The client is synchronous, so each request runs in a small dedicated
  thread pool (sized like the urllib3 connection pool) via ``run_in_executor``; kopf's own loop
  (watches, liveness) never blocks on our I/O.
* **Rate limited.** Every request first takes a token from a :class:`TokenBucket` (default
  QPS 20, burst 40, like controller-runtime's 20 with a little more burst for job creation).
* **Errors wrapped.** Non-2xx responses and connection failures raise :mod:`elastrain.kube.errors`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from elastrain.kube import errors
from elastrain.kube.ratelimit import TokenBucket

log = logging.getLogger(__name__)

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

DEFAULT_QPS = 20.0
DEFAULT_BURST = 40
DEFAULT_THREADS = 8
# Short requests only (no watches here): a create or patch that takes longer is a sick server.
DEFAULT_REQUEST_TIMEOUT = (5.0, 30.0)


def load_api_client(threads: int = DEFAULT_THREADS, kubeconfig: str | None = None) -> k8s.ApiClient:
    """An ``ApiClient`` from ``kubeconfig`` if given, else the in-cluster service account, else
    ``KUBECONFIG``/~/.kube/config (kubectl's order)."""
    configuration = k8s.Configuration()
    if kubeconfig is not None:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = threads
    return k8s.ApiClient(configuration)


class Kube:
    """Rate-limited, error-wrapped JSON requests to the API server."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        limiter: TokenBucket,
        *,
        threads: int = DEFAULT_THREADS,
        request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._api = api_client
        self._limiter = limiter
        self._timeout = request_timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")

    @classmethod
    def from_environment(
        cls, qps: float = DEFAULT_QPS, burst: int = DEFAULT_BURST, threads: int = DEFAULT_THREADS
    ) -> Kube:
        """A client configured like ``kubectl`` would be (in-cluster first, then kubeconfig)."""
        return cls(load_api_client(threads), TokenBucket(qps, burst), threads=threads)

    def close(self) -> None:
        """Stop the request threads and close pooled connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> Any:
        headers = {"Accept": JSON, "Content-Type": content_type}
        try:
            m, url, hdrs, data, post = self._api.param_serialize(
                method,
                path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(m, url, hdrs, data, post, _request_timeout=self._timeout)
            raw = response.read()
        except Exception as exc:  # urllib3/ssl/socket errors: no HTTP response at all
            raise errors.from_exception(exc) from exc
        if not 200 <= response.status <= 299:
            raise errors.from_response(response.status, raw)
        return json.loads(raw) if raw else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """Send one request after taking a rate-limit token; returns the decoded JSON body."""
        await self._limiter.acquire()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._send, method, path, body, query, content_type
        )
