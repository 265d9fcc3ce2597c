"""Old name of `python -m benchmarks.demo.camvid_street`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.camvid_street", "benchmarks.demo.camvid_street", "benchmarks.demo.camvid_street")

if __name__ == "__main__":
    raise SystemExit(main())
