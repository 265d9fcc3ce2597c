"""The fault trial (`python -m benchmarks.faults`): every entry point given bad input, broken files, full and
read-only disks, signals; each case judged by the CLI contract. trial.py runs it and writes the report."""
