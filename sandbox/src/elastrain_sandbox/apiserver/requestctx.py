"""Per-request settings that admission needs but the store's Python API does not carry.

``fieldValidation`` (Strict/Warn/Ignore) and the warnings to return in ``Warning`` headers are
request-scoped; the HTTP layer sets them in a ``ContextVar`` around each store call (store calls
are synchronous, so the context is exactly that request's). In-process callers get ``Ignore``.
"""

from __future__ import annotations

from contextvars import ContextVar

field_validation: ContextVar[str] = ContextVar("field_validation", default="Ignore")
warnings: ContextVar[list[str] | None] = ContextVar("warnings", default=None)


def warn(message: str) -> None:
    sink = warnings.get()
    if sink is not None and message not in sink:
        sink.append(message)
