"""``python -m propylon``: the same as the ``propylon`` command."""

import sys

from propylon.cli import main

if __name__ == "__main__":
    sys.exit(main())
