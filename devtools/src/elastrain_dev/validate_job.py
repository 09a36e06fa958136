"""``python -m elastrain_dev.validate_job FILE...``: check TrainingJob manifests offline.

For CI pipelines and pre-commit hooks: every TrainingJob document in the given YAML files
(``-`` reads stdin) is checked the way the cluster would check it -- the CRD's schema and CEL
rules, as the API server applies them, plus the operator's own parser -- without a cluster.
Other kinds in the files are skipped. Prints every problem as ``FILE[#doc] NAME: field: message``
and exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from elastrain.api import constants as c
from elastrain.api.errors import SpecInvalid
from elastrain.api.parse import parse_training_job
from elastrain.api.schema import crd
from elastrain_sandbox.validation import CompiledSchema

Obj = dict[str, Any]


def problems(obj: Obj, schema: CompiledSchema) -> list[str]:
    """Every problem with one TrainingJob document: the CRD's findings, then the parser's own.

    ObjectMeta is the API server's business, not the CRD's, so its fields are neither pruned
    nor reported here; the parser checks the name.
    """
    pruned = [p for p in schema.pruned_fields(obj) if not p.startswith("metadata")]
    decoded = {**schema.prepare(copy.deepcopy(obj)), "metadata": obj.get("metadata") or {}}
    causes = [cause for cause in schema.validate(decoded) if cause.field != "<nil>"]
    found = [f"{p}: unknown field" for p in pruned] + [str(cause) for cause in causes]
    reported = set(pruned) | {cause.field for cause in causes}
    try:
        parse_training_job(obj)
    except SpecInvalid as exc:
        found += [str(e) for e in exc.errors if e.path not in reported]
    return found


def check_file(name: str, stream: TextIO, schema: CompiledSchema, out: TextIO) -> int:
    """Check one file; print problems to ``out``; return the number of bad documents."""
    bad = 0
    try:
        docs = list(enumerate(yaml.safe_load_all(stream)))
    except yaml.YAMLError as exc:
        print(f"{name}: not valid YAML: {exc}", file=out)
        return 1
    for index, doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != c.KIND:
            continue
        label = f"{name}[{index}] {(doc.get('metadata') or {}).get('name', '<no name>')}"
        if doc.get("apiVersion") != c.API_VERSION:
            print(f"{label}: apiVersion must be {c.API_VERSION}", file=out)
            bad += 1
            continue
        found = problems(doc, schema)
        for problem in found:
            print(f"{label}: {problem}", file=out)
        bad += bool(found)
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    """Check every file; return 0 when every TrainingJob is valid, else 1."""
    parser = argparse.ArgumentParser(prog="validate_job", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML files with TrainingJobs ('-': stdin)")
    args = parser.parse_args(argv)
    schema = CompiledSchema.from_crd(crd(), c.VERSION)
    bad = 0
    for name in args.files:
        if name == "-":
            bad += check_file("<stdin>", sys.stdin, schema, sys.stdout)
            continue
        try:
            with Path(name).open(encoding="utf-8") as stream:
                bad += check_file(name, stream, schema, sys.stdout)
        except OSError as exc:
            print(f"{name}: {exc.strerror}", file=sys.stdout)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
