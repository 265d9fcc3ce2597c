"""`python -m benchmarks.faults`: the fault trial (benchmarks/faults/trial.py)."""
import sys

from .trial import main

if __name__ == "__main__":
    sys.exit(main())
