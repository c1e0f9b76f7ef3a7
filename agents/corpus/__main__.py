"""``python -m agents.corpus``: runs :func:`agents.corpus.cli.main`."""

import sys

from agents.corpus.cli import main

if __name__ == "__main__":
    sys.exit(main())
