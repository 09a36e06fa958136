"""The sandbox's node agent: runs pods bound to the sandbox's nodes as local processes.

``NodeAgent`` is what the sandbox runtime constructs; the ``network``, ``hosts``, ``pod``,
``container`` and ``podstatus`` modules are the pod runtime it is built from. It reads and
writes the cluster through a ``ClusterSource`` (``source``): ``StoreSource`` for the embedded
store, ``HttpSource`` for any API server over HTTP; ``kubelet`` and ``kubeletapi`` add what a
kubelet owes a real control plane (see docs/sandbox-agent.md).
"""

from elastrain_sandbox.agent.agent import NodeAgent
from elastrain_sandbox.agent.httpsource import HttpSource
from elastrain_sandbox.agent.source import ClusterSource, SourceError, SourceEvent
from elastrain_sandbox.agent.storesource import StoreSource

__all__ = ["ClusterSource", "HttpSource", "NodeAgent", "SourceError", "SourceEvent", "StoreSource"]
