"""elastrain_sandbox: an embedded Kubernetes API server, scheduler, controllers and node agent.

``Sandbox`` (in-process, for tests) and ``python -m elastrain_sandbox`` (the CLI) both assemble
a ``SandboxRuntime``; see ``docs/sandbox.md``. Attributes are imported lazily so that the node
agent or the schema engine importing ``elastrain_sandbox.<module>`` never pulls in the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elastrain_sandbox.apiserver.store import Store
    from elastrain_sandbox.embedded import Sandbox

__all__ = ["Sandbox", "Store"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from elastrain_sandbox.embedded import Sandbox

        return Sandbox
    if name == "Store":
        from elastrain_sandbox.apiserver.store import Store

        return Store
    raise AttributeError(name)
