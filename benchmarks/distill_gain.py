"""Old name of `python -m benchmarks.gain`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.distill_gain", "benchmarks.gain", "benchmarks.gain.protocol")

if __name__ == "__main__":
    raise SystemExit(main())
