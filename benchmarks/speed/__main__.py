"""`python -m benchmarks.speed`: the speed table (benchmarks/speed/table.py)."""
import sys

from .table import main

if __name__ == "__main__":
    sys.exit(main())
