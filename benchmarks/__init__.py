"""Benchmarks that turn BRD Edge's two claims into tables, by the job each serves:

gain/    what BRD buys: the distillation-gain protocol, its runs, ledger, statistics and report; boundary maps
speed/   what it costs: the speed table, the runtime loop, plain vs BRD (no added cost), model, loss and loader costs
demo/    what a newcomer runs: the end-to-end demo, the CamVid street video, a shipped model's card
report.py  tables, CSV, charts and the provenance line every report ends with
street.py  the synthetic street video the demo and the loop benchmark play

The old flat names of the commands (`python -m benchmarks.distill_gain`, ...; the "Made by" lines of older
results name them) are files here that run the command at its new place after one `deprecated:` line.
"""


def moved(old: str, new: str, module: str):
    """The `main` of an old command name: one `deprecated:` line naming `new`, then `module`'s main."""

    def main(argv=None) -> int:
        import importlib

        from runtime.contract import deprecated

        deprecated(f"python -m {new}", f"python -m {old}")
        return importlib.import_module(module).main(argv)

    return main
