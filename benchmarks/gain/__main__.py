"""`python -m benchmarks.gain`: the distillation-gain benchmark (benchmarks/gain/protocol.py)."""
import sys

from .protocol import main

if __name__ == "__main__":
    sys.exit(main())
