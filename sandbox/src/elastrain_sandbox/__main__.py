"""``python -m elastrain_sandbox``: see :mod:`elastrain_sandbox.cli`."""

from __future__ import annotations

import sys

from elastrain_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
