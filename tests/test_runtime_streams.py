"""Several streams through one model with runtime.run: one compiled model for every source, a playable
output and counters per stream, one bad source not stopping the others, and the sinks each stream needs."""
from __future__ import annotations

import json

import pytest

from runtime.backends import load_backend
from runtime.run import main as run_main
from .runtime_media import FRAMES, H, W, frames_of, write_video


def _counting_loads(monkeypatch):
    """runtime.run's load_backend, counting how many models it loads (compiles)."""
    import runtime.run as run_mod

    loaded = []

    def load(path, **options):
        backend = load_backend(path, **options)
        loaded.append((backend, options))
        return backend
    monkeypatch.setattr(run_mod, "load_backend", load)
    return loaded


@pytest.mark.parametrize("kind", ["openvino", "fixed"])
def test_two_videos_through_one_model_give_two_playable_outputs_and_their_counters(
        models, videos, tmp_path, monkeypatch, kind):
    short = write_video(tmp_path / "short.avi", 12)
    loaded = _counting_loads(monkeypatch)
    stats = tmp_path / "stats.json"
    assert run_main(["--model", str(models[kind]), "--source", str(videos["good"]), "--source", str(short),
                     "--sink", str(tmp_path / "out_{i}.mp4"), "-o", str(stats), "-q"]) == 0
    assert frames_of(tmp_path / "out_0.mp4") == (FRAMES, (H, W))
    assert frames_of(tmp_path / "out_1.mp4") == (12, (H, W))
    [(backend, options)] = loaded  # one model loaded (compiled) for both streams
    if kind == "openvino":  # several requests in flight: the throughput hint, one request per stream at least
        assert options["hint"] == "throughput" and backend.max_in_flight >= 2
    s = json.loads(stats.read_text())
    assert [e["source"] for e in s["streams"]] == [str(videos["good"]), str(short)]
    assert [e["sink"] for e in s["streams"]] == [str(tmp_path / "out_0.mp4"), str(tmp_path / "out_1.mp4")]
    assert [e["frames"]["processed"] for e in s["streams"]] == [FRAMES, 12]
    assert [e["status"] for e in s["streams"]] == ["ended", "ended"]
    for e, n in zip(s["streams"], (FRAMES, 12)):
        assert e["fps"] > 0 and e["latency_ms"]["total"]["n"] == n and e["frames"]["skipped"] == 0
    assert s["frames"]["processed"] == FRAMES + 12 and s["latency_ms"]["infer"]["n"] == FRAMES + 12
    assert s["fps"] > 0 and s["backend"]["source"] == [str(videos["good"]), str(short)]


def test_one_bad_source_among_two_does_not_stop_the_other(models, videos, tmp_path, capsys):
    missing, stats = tmp_path / "missing.avi", tmp_path / "stats.json"
    assert run_main(["--model", str(models["openvino"]), "--source", str(videos["good"]), "--source", str(missing),
                     "--sink", str(tmp_path / "a.mp4"), "--sink", str(tmp_path / "b.mp4"), "-o", str(stats),
                     "-q"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: stream 1 ({}): ".format(missing)), errors
    assert frames_of(tmp_path / "a.mp4") == (FRAMES, (H, W)) and not (tmp_path / "b.mp4").exists()
    s = json.loads(stats.read_text())
    assert [e["status"] for e in s["streams"]] == ["ended", "failed"]
    assert [e["frames"]["processed"] for e in s["streams"]] == [FRAMES, 0] and s["frames"]["processed"] == FRAMES
    assert str(missing) in s["streams"][1]["error"]


@pytest.mark.parametrize("sinks, message", [
    (["a.mp4"], "2 sources need one --sink each, or one template with {i}"),
    (["a.mp4", "b.mp4", "c.mp4"], "2 sources need one --sink each"),
    (["a.mp4", "a.mp4"], "a.mp4: given to two streams"),
    (["window", "none"], "--sink window: several streams cannot show windows")])
def test_several_sources_need_one_sink_each_or_a_template(models, videos, tmp_path, capsys, sinks, message):
    args = ["--model", str(models["fixed"]), "--source", str(videos["good"]), "--source", str(videos["good"])]
    for sink in sinks:
        args += ["--sink", str(tmp_path / sink) if "." in sink else sink]
    assert run_main(args + ["-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_one_source_keeps_its_json_and_adds_one_stream(models, videos, tmp_path):
    stats = tmp_path / "stats.json"
    assert run_main(["--model", str(models["fixed"]), "--source", str(videos["good"]), "--sink",
                     str(tmp_path / "out_{i}.mp4"), "-o", str(stats), "-q"]) == 0
    s = json.loads(stats.read_text())
    assert frames_of(tmp_path / "out_0.mp4") == (FRAMES, (H, W)) and s["frames"]["processed"] == FRAMES
    assert s["backend"]["source"] == str(videos["good"])
    [entry] = s["streams"]
    assert entry["source"] == str(videos["good"]) and entry["frames"] == s["frames"] and entry["status"] == "ended"
