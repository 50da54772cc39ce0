"""``python -m qmu_core``: the book's command line (:mod:`qmu_core.book.cli`)."""

import sys

from .book.cli import main

if __name__ == "__main__":
    sys.exit(main())
