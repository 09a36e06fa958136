"""The sandbox API server's CRD validation engine: structural schemas, pruning, defaulting, CEL.

It mirrors what kube-apiserver does for ``apiextensions.k8s.io/v1`` CRDs, generically, so the
sandbox answers custom-resource writes with the same 422 errors a real cluster gives. See
``docs/sandbox-validation.md`` for what is covered and the known gaps.
"""

from elastrain_sandbox.validation.compiled import CompiledSchema
from elastrain_sandbox.validation.errors import FieldCause, SchemaError, invalid_status

__all__ = ["CompiledSchema", "FieldCause", "SchemaError", "invalid_status"]
