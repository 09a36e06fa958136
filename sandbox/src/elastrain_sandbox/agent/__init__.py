"""The sandbox's node agent: runs pods bound to the sandbox's nodes as local processes.

``NodeAgent`` is what the sandbox runtime constructs; the ``network``, ``hosts``, ``pod``,
``container`` and ``podstatus`` modules are the pod runtime it is built from
(see docs/sandbox-agent.md).
"""

from elastrain_sandbox.agent.agent import NodeAgent

__all__ = ["NodeAgent"]
