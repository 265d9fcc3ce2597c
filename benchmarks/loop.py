"""Old name of `python -m benchmarks.speed.loop`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.loop", "benchmarks.speed.loop", "benchmarks.speed.loop")

if __name__ == "__main__":
    raise SystemExit(main())
