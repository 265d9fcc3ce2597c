"""What a newcomer runs and sees: the README's first command, the CamVid drive through the shipped model,
and shipping a model with its card.

end_to_end.py     the whole job on synthetic data: `python -m benchmarks.demo`
camvid_street.py  the CamVid val drive as a video through runtime.run: `python -m benchmarks.demo.camvid_street`
model_card.py     a model stored under models/ with its card: `python -m benchmarks.demo.model_card`
"""
# the synthetic street video lives in benchmarks/street.py (the loop benchmark plays it too); this name
# stays for code that imported it from the demo
from ..street import street_video  # noqa: F401
