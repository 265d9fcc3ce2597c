"""Old name of `python -m benchmarks.gain.boundary_maps`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.boundary_maps", "benchmarks.gain.boundary_maps", "benchmarks.gain.boundary_maps")

if __name__ == "__main__":
    raise SystemExit(main())
