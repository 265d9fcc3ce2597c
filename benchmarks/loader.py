"""Old name of `python -m benchmarks.speed.loader`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.loader", "benchmarks.speed.loader", "benchmarks.speed.loader")

if __name__ == "__main__":
    raise SystemExit(main())
