"""``python -m geneae``: the command line (as the ``geneae`` script)."""

import sys

from geneae.cli import main

if __name__ == "__main__":
    sys.exit(main())
