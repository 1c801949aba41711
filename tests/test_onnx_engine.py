"""ONNX export and the onnxruntime engine: same output as the PyTorch reference path."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from stpr.cli import main  # noqa: E402
from stpr.enhance import Enhancer  # noqa: E402
from stpr.errors import ModelError, UsageError  # noqa: E402
from stpr.io import open_input  # noqa: E402
from stpr.onnx_engine import MANIFEST, OnnxSTPR, export_onnx, is_onnx_export  # noqa: E402

from helpers import dark_clip, tiny_model  # noqa: E402
from media import write_test_video  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _max_diff(a, b) -> int:
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("overrides", [{}, {"flow_mode": "zero"}, {"frames": 1}, {"frames": 5},
                                       {"pixel_fusion": True, "hf_split": False},
                                       {"encoder": "strided", "flow_stride": 8}])
def test_onnx_matches_pytorch_streaming(tmp_path, overrides):
    model = tiny_model(**overrides)
    export_onnx(model, tmp_path / "onnx")
    clip = list(dark_clip(n=6, h=40, w=56))
    ref = list(Enhancer(model, tile=0, precision="fp32").enhance_frames(clip))
    got = list(Enhancer(OnnxSTPR(tmp_path / "onnx", threads=1), tile=0).enhance_frames(clip))
    assert len(got) == len(ref)
    assert _max_diff(ref, got) <= 1  # float rounding only: a wrong graph is off by tens of levels


def test_onnx_export_serves_other_sizes_and_tiles(tmp_path):
    """One export (traced at one size) runs any frame size, whole or tiled."""
    model = tiny_model()
    export_onnx(model, tmp_path / "onnx", sample_size=(64, 64))
    engine = OnnxSTPR(tmp_path / "onnx", threads=1)
    clip = list(dark_clip(n=4, h=150, w=200, seed=3))
    for tile in (0, 96):
        # the network's outputs (the temporal filter's flow may amplify a level's difference)
        ref = list(Enhancer(model, tile=tile, tile_overlap=32, precision="fp32", temporal_filter=0).enhance_frames(clip))
        got = list(Enhancer(engine, tile=tile, tile_overlap=32, temporal_filter=0).enhance_frames(clip))
        assert _max_diff(ref, got) <= 1


def test_manifest_and_detection(tmp_path):
    export_onnx(tiny_model(), tmp_path / "e", weights=None)
    manifest = json.loads((tmp_path / "e" / MANIFEST).read_text())
    assert manifest["stpr_config"]["channels"] == 8 and manifest["state_names"][:3] == ["norm_small", "logb", "feats"]
    assert is_onnx_export(tmp_path / "e") and not is_onnx_export(tmp_path)
    assert not list((tmp_path / "e").glob("*.part"))


def test_dis_flow_cannot_be_exported(tmp_path):
    with pytest.raises(UsageError, match="DIS"):
        export_onnx(tiny_model(flow_mode="dis"), tmp_path / "x")
    assert not (tmp_path / "x" / MANIFEST).exists()


def test_broken_export_is_a_model_error(tmp_path):
    export_onnx(tiny_model(), tmp_path / "e")
    (tmp_path / "e" / "decode.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError):
        OnnxSTPR(tmp_path / "e")
    (tmp_path / "e" / MANIFEST).write_text("{")
    with pytest.raises(ModelError):
        OnnxSTPR(tmp_path / "e")


def test_export_from_an_older_stpr_asks_for_a_new_export(tmp_path):
    export_onnx(tiny_model(), tmp_path / "e")
    manifest = json.loads((tmp_path / "e" / MANIFEST).read_text())
    del manifest["format"]  # exports made before the decode graph took every frame's pixels
    (tmp_path / "e" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="export the model again"):
        OnnxSTPR(tmp_path / "e")


def test_cli_export_and_enhance_with_onnx(tmp_path, weights, capsys):
    src = tmp_path / "in.mp4"
    write_test_video(src, dark_clip(n=5, h=32, w=48), fps=10)
    exp = tmp_path / "exp"
    assert main(["export", "--onnx", str(exp), "--model", str(weights)]) == 0
    assert main(["export", "--onnx", str(exp), "--model", str(weights)]) == 2  # exists: needs --overwrite
    assert main(["export", "--onnx", str(tmp_path / "d"), "--model", str(weights), "--flow", "dis"]) == 2
    outs = {}
    for name, extra in (("torch", []), ("onnx_dir", ["--engine", "onnx", "--model", str(exp)]),
                        ("onnx_fly", ["--engine", "onnx", "--model", str(weights)])):
        dst = tmp_path / f"{name}.mkv"
        args = ["enhance", str(src), "-o", str(dst), "--quiet", "--codec", "ffv1", "--threads", "1"]
        if name == "torch":
            args += ["--model", str(weights), "--precision", "fp32"]
        assert main(args + extra) == 0
        with open_input(dst) as r:
            outs[name] = [f.rgb for f in r]
    # float rounding differs between the runtimes; the linear-light gain and the steep sRGB curve
    # near black can turn that into 2 levels on a handful of pixels
    assert _max_diff(outs["torch"], outs["onnx_dir"]) <= 2
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(outs["torch"], outs["onnx_dir"])]) < 0.01
    assert _max_diff(outs["onnx_dir"], outs["onnx_fly"]) == 0
    # an export folder without --engine onnx is a model error, not a crash
    assert main(["enhance", str(src), "-o", str(tmp_path / "bad.mp4"), "--model", str(exp), "--quiet"]) == 4
    # --flow cannot change what an export computes
    assert main(["enhance", str(src), "-o", str(tmp_path / "bad2.mp4"), "--engine", "onnx", "--model", str(exp),
                 "--flow", "zero", "--quiet"]) == 2
    assert not (tmp_path / "bad.mp4").exists() and not (tmp_path / "bad2.mp4").exists()


def test_resumable_run_with_onnx_engine(tmp_path):
    """--resume fingerprints the ONNX graphs (there is no PyTorch state dict to hash)."""
    src = tmp_path / "in.mp4"
    write_test_video(src, dark_clip(n=5, h=32, w=48), fps=10)
    exp = tmp_path / "exp"
    export_onnx(tiny_model(), exp)
    a, b = OnnxSTPR(exp), OnnxSTPR(exp)
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("onnx:")
    outs = []
    for extra in ([], ["--resume"]):
        dst = tmp_path / f"out{len(outs)}.mkv"
        assert main(["enhance", str(src), "-o", str(dst), "--quiet", "--codec", "ffv1", "--engine", "onnx",
                     "--model", str(exp), *extra]) == 0
        with open_input(dst) as r:
            outs.append([f.rgb for f in r])
    assert len(outs[1]) == 5 and _max_diff(*outs) == 0


def test_export_bakes_the_look_in(tmp_path, tmp_path_factory):
    """An export computes one look (named in its manifest); asking it for another is a usage error."""
    from helpers import save_weights
    from test_models import _with_looks

    model = _with_looks()
    path = save_weights(tmp_path_factory, model)
    clip = list(dark_clip(n=3, h=32, w=48, seed=2))
    assert main(["export", "--onnx", str(tmp_path / "e"), "--model", str(path), "--look", "lol"]) == 0
    assert json.loads((tmp_path / "e" / MANIFEST).read_text())["look"] == "lol"
    got = list(Enhancer.from_pretrained(tmp_path / "e", engine="onnx", look="lol").enhance_frames(clip))
    model.set_look("lol")
    ref = list(Enhancer(model, precision="fp32").enhance_frames(clip))
    assert _max_diff(ref, got) <= 2
    with pytest.raises(UsageError, match="export again with --look"):
        Enhancer.from_pretrained(tmp_path / "e", engine="onnx", look="natural")
    fly = list(Enhancer.from_pretrained(path, engine="onnx", look="lol").enhance_frames(clip))
    assert _max_diff(fly, got) == 0


@pytest.mark.parametrize("name", ["fast", None])
def test_onnx_engine_on_a_shipped_model_by_name(name):
    """``--engine onnx --model fast`` (and the default model) export the shipped weights on the fly:
    the export once looked for a file called "fast" to hash and failed with FileNotFoundError."""
    enhancer = Enhancer.from_pretrained(name, engine="onnx", threads=1, tile=0)
    clip = list(dark_clip(n=2, h=40, w=56))
    ref = list(Enhancer.from_pretrained(name, threads=1, tile=0, precision="fp32").enhance_frames(clip))
    assert _max_diff(ref, list(enhancer.enhance_frames(clip))) <= 1
