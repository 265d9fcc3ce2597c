"""Old name of `python -m benchmarks.demo.model_card`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.model_card", "benchmarks.demo.model_card", "benchmarks.demo.model_card")

if __name__ == "__main__":
    raise SystemExit(main())
