"""``python -m story_env.agents.corpus``: runs :func:`story_env.agents.corpus.cli.main`."""

import sys

from story_env.agents.corpus.cli import main

if __name__ == "__main__":
    sys.exit(main())
