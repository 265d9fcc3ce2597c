"""Benchmarks that turn BRD Edge's two claims into tables, by the job each serves:

gain/    what BRD buys: the distillation-gain protocol, its runs, ledger, statistics and report; boundary maps
speed/   what it costs: the speed table, the runtime loop, plain vs BRD (no added cost), model, loss and loader costs
demo/    what a newcomer runs: the end-to-end demo, the CamVid street video, a shipped model's card
report.py  tables, CSV, charts and the provenance line every report ends with
street.py  the synthetic street video the demo and the loop benchmark play
"""
