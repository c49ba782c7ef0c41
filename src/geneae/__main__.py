"""``python -m geneae``: the command line (as the ``geneae`` script)."""

from geneae.cli import run

if __name__ == "__main__":
    run()
