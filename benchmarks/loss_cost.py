"""Old name of `python -m benchmarks.speed.loss_cost`: one deprecation line, then that command."""
from benchmarks import moved

main = moved("benchmarks.loss_cost", "benchmarks.speed.loss_cost", "benchmarks.speed.loss_cost")

if __name__ == "__main__":
    raise SystemExit(main())
