"""``python -m elastrain_dev.demo``: see :mod:`elastrain_dev.demo.cli`."""

import sys

from elastrain_dev.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
