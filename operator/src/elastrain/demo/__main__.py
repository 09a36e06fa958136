"""``python -m elastrain.demo``: see :mod:`elastrain.demo.cli`."""

import sys

from elastrain.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
