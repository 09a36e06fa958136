"""Command-line entry point: ``python -m elastrain <command>``.

Each command lives in the subpackage that owns it and exposes ``configure(parser)`` and
``run(args) -> int``; this module only dispatches, so that importing one command never pulls in
another's heavy dependencies (kopf for ``operator``, aiohttp for ``sandbox``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "operator": (
        "elastrain.handlers.cli",
        "run the operator (kopf) against KUBECONFIG or in-cluster",
    ),
    "sandbox": ("elastrain.sandbox.cli", "run the embedded Kubernetes API server and node agent"),
    "gen-crds": ("elastrain.api.crdgen", "write crds/ and the chart's CRD copy from the schema"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command, returning its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="elastrain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = args_list[0] if args_list and args_list[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module_name).configure(cmd)
    args = parser.parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
