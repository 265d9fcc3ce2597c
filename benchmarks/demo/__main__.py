"""`python -m benchmarks.demo`: BRD Edge end to end on the built-in synthetic data (benchmarks/demo/end_to_end.py)."""
import sys

from .end_to_end import main

if __name__ == "__main__":
    sys.exit(main())
