"""No usage telemetry: nothing a command does is reported anywhere, and nothing is written into the home folder.

OpenVINO and NNCF report usage to Google Analytics through the `openvino_telemetry` package. OpenVINO's
converter does it on `import openvino` already, and both create it with `enable_opt_in_dialog=False,
disable_in_ci=True`: with no consent file in the user's home and no `CI=true`, they send, and they write
a client id and a usage count into ~/intel. On Linux each message goes out from a child process forked
(multiprocessing) from a worker thread, which waits on the network: offline, a command that has finished
hangs at exit joining it, and the child inherits the command's signal handler (a SIGTERM prints its
traceback).

ONNX Runtime (1.29 and later, on Linux too) collects usage events (1DS) with a device id and an offline
cache under ~/.cache/Microsoft/DeveloperTools, unless ORT_DISABLE_TELEMETRY=1 is set before it is imported.

`off()`, run before any of them is first imported:
- makes `import openvino_telemetry` fail (None in sys.modules), so that OpenVINO and NNCF take their own
  no-telemetry stubs (openvino.tools.ovc.telemetry_stub, NNCF's NNCFTelemetryStub): nothing sent, nothing
  written, no process forked;
- sets ORT_DISABLE_TELEMETRY=1 (ONNX Runtime's own opt-out; a value the user set is kept), which child
  processes inherit.
`CI` is left alone and no consent file is written. Every entry point runs it (`command`), and so does
`runtime.formats.require` before it imports an optional package (library use). A child Python that imports
OpenVINO (benchmark_app) starts with `PYTHON_PREAMBLE`.

Stdlib only.
"""
import os
import sys

PACKAGE = "openvino_telemetry"

# the first statement of a `python -c` that runs an OpenVINO tool: the same switch in a child interpreter
PYTHON_PREAMBLE = "import sys; sys.modules[{!r}] = None; ".format(PACKAGE)


def off() -> None:
    """Switch OpenVINO's, NNCF's and ONNX Runtime's usage telemetry off for this process (idempotent)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    loaded = sys.modules.get(PACKAGE)
    if loaded is None:  # not imported yet (or already switched off): the libraries will find no package
        sys.modules[PACKAGE] = None
        return
    _silence(loaded)


def _silence(package) -> None:
    """`openvino_telemetry` was imported before `off()` (by the caller's own code): stop what it does instead.
    Every message goes through TelemetrySender.send (no send, no fork); the consent check says declined, so
    a later (re)initialisation writes no client id or usage count; the instance made already sends nothing."""
    sender = sys.modules.get(PACKAGE + ".utils.sender")
    checker = sys.modules.get(PACKAGE + ".utils.opt_in_checker")
    if sender is not None:
        sender.TelemetrySender.send = lambda self, backend, message: None
    if checker is not None:
        declined = checker.ConsentCheckResult.DECLINED
        checker.OptInChecker.check = lambda self, *args, **kwargs: declined
    telemetry = getattr(package, "Telemetry", None)
    instance = getattr(telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False

