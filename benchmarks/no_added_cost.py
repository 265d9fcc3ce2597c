"""Old name of `python -m benchmarks.speed.no_added_cost`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.no_added_cost", "benchmarks.speed.no_added_cost", "benchmarks.speed.no_added_cost")

if __name__ == "__main__":
    raise SystemExit(main())
