"""A reader for one JSON object of a spec that records a ``FieldError`` per bad field.

The parser walks the spec with one ``Reader`` per object, so each getter states a field's type,
range and default in one call and every problem is collected instead of raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from elastrain.api.errors import FieldError

E = TypeVar("E", bound=StrEnum)

MAX_INT32 = 2**31 - 1


def describe(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Reader:
    """Reads the fields of one JSON object, recording one FieldError per bad or unknown field.

    Getters return None for an absent optional field *and* for an invalid one (after recording
    the error), so cross-field checks simply skip what is already reported.
    """

    def __init__(
        self, errors: list[FieldError], path: str, obj: Mapping[str, Any], known: tuple[str, ...]
    ) -> None:
        self.errors = errors
        self.path = path
        self.obj = obj
        for key in obj:
            if key not in known:
                self.error(str(key), f"unknown field; expected one of {', '.join(known)}")

    def at(self, key: str) -> str:
        """The dotted path of ``key`` in this object."""
        return f"{self.path}.{key}"

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(self.at(key), message))

    def present(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def obj_(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                self.error(key, "required field is missing")
            return None
        if not isinstance(value, Mapping):
            self.error(key, f"must be an object, got {describe(value)}")
            return None
        return value

    def int_(
        self,
        key: str,
        *,
        default: int | None = None,
        minimum: int | None = None,
        maximum: int | None = MAX_INT32,
        required: bool = False,
    ) -> int | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                self.error(key, "required field is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer, got {describe(value)}")
            return None
        if minimum is not None and value < minimum:
            self.error(key, f"must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"must be at most {maximum}, got {value}")
            return None
        return value

    def str_(self, key: str, *, pattern: str, what: str, max_length: int = 253) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.error(key, f"must be a non-empty string, got {describe(value)}")
            return None
        if len(value) > max_length:
            self.error(key, f"must be at most {max_length} characters, got {len(value)}")
            return None
        if not re.match(pattern, value):
            self.error(key, f"{value!r} must be {what}")
            return None
        return value

    def bool_(self, key: str, *, default: bool) -> bool | None:
        value = self.obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {describe(value)}")
            return None
        return value

    def enum(self, key: str, enum_type: type[E], default: E) -> E | None:
        value = self.obj.get(key)
        if value is None:
            return default
        allowed = [m.value for m in enum_type]
        if value not in allowed:
            self.error(key, f"must be one of {', '.join(allowed)}, got {describe(value)}")
            return None
        return enum_type(value)
