"""``CompiledSchema``: one CRD version's schema, checked and compiled once, applied per request.

The API server calls, for every create and update of a custom resource (main resource and
``/status`` alike, since the apiserver validates the whole object on status writes too)::

    obj = cs.default(cs.prune(obj))          # or cs.prepare(obj); also on read, as upstream
    causes = cs.validate(obj, old)           # old=None on create
    if causes: return 422 invalid_status(kind, group, name, causes)

and reports ``cs.pruned_fields(obj)`` as ``unknown field "..."`` warnings (or a 400 with
``fieldValidation=Strict``).
"""

from __future__ import annotations

from typing import Any

from elastrain_sandbox.validation import errors as fe
from elastrain_sandbox.validation.celcompile import CompiledRule, compile_rule
from elastrain_sandbox.validation.celcost import CRD_LIMIT, RULE_LIMIT, UNKNOWN_SIZE, cardinality
from elastrain_sandbox.validation.celeval import Evaluator
from elastrain_sandbox.validation.invariants import check_invariants
from elastrain_sandbox.validation.node import Node
from elastrain_sandbox.validation.openapi import MISSING, validate_openapi
from elastrain_sandbox.validation.prune import default as apply_defaults
from elastrain_sandbox.validation.prune import prune as prune_object
from elastrain_sandbox.validation.structural import parse_schema

_BLOCKING = {fe.NOT_SUPPORTED, fe.REQUIRED, fe.TOO_LONG, fe.TOO_MANY, fe.TYPE_INVALID}
_COST_HINT = (
    "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, "
    "maps, and strings are declared)"
)
_UNCHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def _find_version(crd: Any, version: str) -> tuple[int, dict[str, Any]]:
    spec = crd.get("spec") if isinstance(crd, dict) else None
    versions = spec.get("versions") if isinstance(spec, dict) else None
    if not isinstance(versions, list):
        raise fe.SchemaError(
            [
                fe.required(
                    "spec.versions", "must have exactly one version marked as storage version"
                )
            ]
        )
    for i, entry in enumerate(versions):
        if isinstance(entry, dict) and entry.get("name") == version:
            return i, entry
    names = [v.get("name") for v in versions if isinstance(v, dict)]
    raise fe.SchemaError([fe.not_supported("spec.versions", version, names)])


def _walk(node: Node, times: int) -> list[tuple[Node, int]]:
    """Every node that may hold rules (the skeleton and ``allOf`` subtrees), with how many times
    its rules can run per object: the worst-case entries of every enclosing list and map."""
    out = [(node, times)]
    for child in [*node.properties.values(), *node.all_of]:
        out.extend(_walk(child, times))
    for nested in (node.items, node.additional):
        if isinstance(nested, Node):
            out.extend(_walk(nested, times * cardinality(node)))
    return out


def _cost_message(name: str, cost: float, limit: int) -> str:
    """``getCostErrorMessage`` of apiextensions' CRD validation, factor formatting included."""
    factor = cost / limit
    if factor > 100:
        shown = "more than 100x"
    elif factor < 1.5:
        shown = f"{factor:f}x"
    else:
        shown = f"{factor:.1f}x"
    return f"{name} exceeds budget by factor of {shown} {_COST_HINT}"


def _cost_report(
    nodes: list[tuple[Node, int]], rules: dict[int, list[CompiledRule]], path: str
) -> list[tuple[str, str]]:
    """The cost errors kube-apiserver gives, as (field, detail) pairs, in its order.

    As upstream: a rule's cost is one evaluation's times the entries of its enclosing lists and
    maps, refused above 10,000,000; all rules together above 100,000,000 are refused too, naming
    the (at most four) rules costing 1% of that or more, most expensive first, then the total.
    """
    found: list[tuple[str, str]] = []
    total = 0.0
    expensive: list[tuple[float, str]] = []
    for node, times in nodes:
        for rule in rules.get(id(node), []):
            cost = min(rule.cost * times, UNKNOWN_SIZE)
            where = f"{rule.spec.crd_path}.rule"
            if cost > RULE_LIMIT:
                found.append((where, _cost_message("estimated rule cost", cost, RULE_LIMIT)))
            total = min(total + cost, UNKNOWN_SIZE)
            if cost >= CRD_LIMIT / 100:
                expensive.append((cost, where))
    if total > CRD_LIMIT:
        expensive.sort(key=lambda entry: -entry[0])
        detail = (
            "contributed to estimated rule cost total exceeding cost limit for entire "
            "OpenAPIv3 schema"
        )
        found.extend((where, detail) for _, where in expensive[:4])
        name = "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema"
        found.append((path, _cost_message(name, total, CRD_LIMIT)))
    return found


class CompiledSchema:
    """Prune, default and validate custom resources of one CRD version like kube-apiserver."""

    def __init__(
        self,
        root: Node,
        rules: dict[int, list[CompiledRule]],
        unknown_fields: list[str],
        cost_warnings: list[str],
    ) -> None:
        self._root = root
        self._rules = rules
        self.unknown_fields = unknown_fields
        """Schema keys the apiserver does not know (typos such as ``minimun``), by CRD path.

        The apiserver drops them when decoding the CRD: a warning, or a 400 under strict field
        validation (kubectl's default). Reported here so the API server can do the same.
        """
        self.cost_warnings = cost_warnings
        """Rules whose estimated cost a real apiserver would likely refuse (see ``celcost``).

        Approximate, so warnings rather than errors: a CRD's own tests should assert this empty.
        (A rule whose estimate is unbounded, which no schema bound helps, fails the CRD instead.)
        """

    @classmethod
    def from_crd(cls, crd: dict[str, Any], version: str) -> CompiledSchema:
        """Check and compile ``version``'s schema; raise SchemaError listing every problem."""
        index, entry = _find_version(crd, version)
        path = f"spec.versions[{index}].schema.openAPIV3Schema"
        schema = entry.get("schema")
        raw = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
        if raw is None:
            raise fe.SchemaError([fe.required(path, "schemas are required")])
        root, causes, unknown = parse_schema(raw, path)
        causes.extend(_check_root_metadata(root, path))
        rules: dict[int, list[CompiledRule]] = {}
        nodes = _walk(root, 1)
        for node, _ in nodes:
            for spec in node.rules:
                try:
                    shape = node.shape or node
                    resource = shape is root or shape.embedded
                    compiled = compile_rule(spec, node, resource=resource)
                    rules.setdefault(id(node), []).append(compiled)
                except fe.SchemaError as exc:
                    causes.extend(exc.causes)
        # Defaults are checked with the rules of their node and below, so once all are compiled.
        bad_defaults = [
            c for node, _ in nodes if node.has_default for c in _check_default(node, rules)
        ]
        causes.extend(bad_defaults)
        costs = _cost_report(nodes, rules, path)
        unbounded = any(rule.unbounded for compiled in rules.values() for rule in compiled)
        if unbounded and not bad_defaults:  # upstream costs rules only once defaults are valid
            causes.extend(fe.forbidden(where, detail) for where, detail in costs)
        if causes:
            raise fe.SchemaError(causes)
        warnings = [f"{where}: {detail}" for where, detail in costs]
        return cls(root, rules, unknown, warnings)

    def prune(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy without the fields the schema does not declare (top-level meta always kept)."""
        return prune_object(obj, self._root)[0]

    def pruned_fields(self, obj: dict[str, Any]) -> list[str]:
        """Paths ``prune`` would drop, for ``unknown field "spec.x"`` warnings or strict errors."""
        return prune_object(obj, self._root)[1]

    def default(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy with schema defaults applied and nulls dropped from non-nullable fields."""
        return apply_defaults(obj, self._root)

    def prepare(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Prune then default: what the apiserver does to every object it decodes or reads."""
        return self.default(self.prune(obj))

    def validate(
        self, obj: dict[str, Any], old: dict[str, Any] | None = None
    ) -> list[fe.FieldCause]:
        """Every validation error of ``obj`` (an update when ``old`` is given), upstream's order."""
        previous = MISSING if old is None else old
        causes = validate_openapi(obj, self._root, previous)
        causes.extend(check_invariants(obj, self._root))
        if not self._rules:
            return causes
        if any(c.type in _BLOCKING for c in causes):
            # Upstream skips CEL then, and says so, as rules could not trust the value's shape.
            causes.append(fe.invalid(fe.ROOT, None, _UNCHECKED))
            return causes
        evaluator = Evaluator(self._rules)
        evaluator.walk(obj, self._root, "", previous, root=True)
        return causes + evaluator.causes


def _check_root_metadata(root: Node, path: str) -> list[fe.FieldCause]:
    meta = root.properties.get("metadata")
    if meta is None:
        return []
    extra = set(meta.properties) - {"name", "generateName"}
    if extra or meta.type not in (None, "object") or meta.rules or meta.has_default:
        return [
            fe.forbidden(
                f"{path}.properties[metadata]",
                "must not specify anything other than name and generateName, "
                "but metadata is implicitly specified",
            )
        ]
    return []


def _check_default(node: Node, rules: dict[int, list[CompiledRule]]) -> list[fe.FieldCause]:
    """A default must survive pruning unchanged and pass its node's schema and CEL rules.

    As upstream's ``ValidateDefaults``: the default is checked as written (defaults nested in it
    are not applied first), by the OpenAPI schema, then, if that passes, by the rules of its node
    and below, with the default as both ``self`` and ``oldSelf`` (no ratcheting) and, if those
    pass, once more as a create (no ``oldSelf``: only ``optionalOldSelf`` transition rules run).
    """
    where = f"{node.crd_path}.default"
    value = node.default
    if isinstance(value, dict):
        dropped = prune_object(value, node)[1]
        if dropped:
            return [fe.invalid(where, value, f"must not have unknown fields: {', '.join(dropped)}")]
    causes = [
        fe.FieldCause(where if c.field == fe.ROOT else f"{where}.{c.field}", c.type, c.message)
        for c in validate_openapi(value, node)
    ]
    if causes or not rules:
        return causes
    evaluator = Evaluator(rules, ratchet=False)
    evaluator.walk(value, node, where, value)
    if not evaluator.causes:
        evaluator.walk(value, node, where, MISSING)
    return evaluator.causes
