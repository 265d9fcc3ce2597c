"""What BRD costs at inference (nothing) and how fast the students run: the speed table, the runtime loop
against its backend, plain vs BRD on every backend, and the training-side costs.

table.py          every student x backend at real size, interleaved: `python -m benchmarks.speed`
loop.py           the runtime loop vs runtime.bench vs benchmark_app: `python -m benchmarks.speed.loop`
overlay.py        the overlay's CPU per frame by part: `python -m benchmarks.speed.overlay`
no_added_cost.py  plain vs BRD: params, MACs, sizes, graph identity, latency: `python -m benchmarks.speed.no_added_cost`
model_cost.py     parameter and MAC counts, ONNX graph structure (shared by the above)
loss_cost.py      BRD's loss time in a training step; relation-loss memory: `python -m benchmarks.speed.loss_cost`
loader.py         the Cityscapes training pipeline's images/s by worker count: `python -m benchmarks.speed.loader`
"""
