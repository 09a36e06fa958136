"""Command-line entry point: ``python -m elastrain operator``.

The operator package has exactly one command; the sandbox (``python -m elastrain_sandbox``) and
the developer tools (``python -m elastrain_dev.*``) are separate packages that never ship in the
operator's wheel or image. The ``operator`` word is kept so that the chart's and the image's
command line stay stable if a second production command is ever added.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the operator, returning its exit status."""
    parser = argparse.ArgumentParser(prog="elastrain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmd = sub.add_parser(
        "operator", help="run the operator (kopf) against KUBECONFIG or in-cluster"
    )
    # Imported here so that ``--help`` of the parser alone never pays for importing kopf.
    from elastrain.controller import cli

    cli.configure(cmd)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return int(cli.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
