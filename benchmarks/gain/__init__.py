"""What BRD buys: the distillation-gain benchmark (plain / KD / CWD / SKD / BRD / ablations, tuned on a held-out
split, several seeds, BRD's paired differences with 95% intervals) and the check of the boundary maps it distils.

protocol.py   the protocol and its command: `python -m benchmarks.gain`
runs.py       the protocol's constants and one run (config, overrides, training jobs, scoring, reuse)
ledger.py     the committed ledger a fresh machine resumes from
stats.py      means, paired differences, t-intervals
report.py     the Markdown report, CSV and charts; panel.py its prediction panel
boundary_maps.py  each stage's boundary map against label boundaries: `python -m benchmarks.gain.boundary_maps`
trials.py     what else was tried on the tune split (boundary stages, longer schedules), against each method's
              tuned setting: `python -m benchmarks.gain.trials`
"""
