"""The parsed form of a CRD schema: one ``Node`` per schema object, plus its CEL rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RuleSpec:
    """One ``x-kubernetes-validations`` entry as written, with where it was declared."""

    rule: str
    message: str | None
    message_expression: str | None
    reason: str | None
    field_path: str | None
    optional_old_self: bool
    crd_path: str


@dataclass
class Node:
    """One schema node: its structure plus the value validations that apply to it."""

    type: str | None = None
    nullable: bool = False
    properties: dict[str, Node] = field(default_factory=dict)
    additional: Node | bool | None = None
    items: Node | None = None
    preserve_unknown: bool = False
    embedded: bool = False
    int_or_string: bool = False
    list_type: str | None = None
    list_map_keys: tuple[str, ...] = ()
    map_type: str | None = None
    has_default: bool = False
    default: Any = None
    required: tuple[str, ...] = ()
    enum: list[Any] | None = None
    pattern: re.Pattern[str] | None = None
    pattern_text: str = ""
    format: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    all_of: list[Node] = field(default_factory=list)
    any_of: list[Node] = field(default_factory=list)
    one_of: list[Node] = field(default_factory=list)
    not_: Node | None = None
    rules: list[RuleSpec] = field(default_factory=list)
    crd_path: str = ""
    correlatable: bool = True
    shape: Node | None = None
    """For an ``allOf`` subtree node: the structural node it mirrors (types CEL's ``self``)."""

    def child_schema(self, key: str) -> Node | None:
        """The schema of an object member ``key``, or None when the key is unknown here."""
        if key in self.properties:
            return self.properties[key]
        if isinstance(self.additional, Node):
            return self.additional
        return None

    @property
    def cel_type(self) -> str:
        """The bad value CEL rule errors show: the node's schema type (empty when untyped)."""
        return self.type or ""
