"""Validation errors for TrainingJob specs.

Every problem with a spec is reported at once, each with the dotted path of the offending
field, so that one ``kubectl apply`` round trip (or one ``InvalidSpec`` condition) tells a user
everything to fix instead of one error per attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem: ``path`` is dotted from the object root (``spec.replicaSpecs.worker``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecInvalid(Exception):
    """A TrainingJob that cannot be run, with every field error found (never empty)."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        if not self.errors:
            raise ValueError("SpecInvalid needs at least one FieldError")
        super().__init__(str(self))

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)
