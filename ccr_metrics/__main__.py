"""``python -m ccr_metrics``: the ``ccr-metrics`` command line."""

import sys

from .cli import main

# Guarded: pytest --doctest-modules imports this module.
if __name__ == "__main__":
    sys.exit(main())
