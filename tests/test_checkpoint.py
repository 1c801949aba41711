"""Saving / loading self-describing STPR weight files (stpr.checkpoint)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stpr.checkpoint import DEFAULT_WEIGHTS, MODELS, load_model, read_metadata, resolve_weights, save_model
from stpr.errors import ModelError
from stpr.models.stpr_arch import STPR

from helpers import tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_like(seed: int = 0, **kw) -> STPR:
    """A tiny model whose parameters are all non-trivial (zero-initialised layers included)."""
    model = tiny(seed, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def clip(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 3, 24, 40, generator=g) * 0.3


@pytest.fixture()
def saved(tmp_path):
    model = trained_like(frames=3)
    path = tmp_path / "m.safetensors"
    save_model(model, path, extra={"step": 12, "note": {"a": 1}})
    return model, path


def test_round_trip_identical_outputs(saved):
    model, path = saved
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.cfg == model.cfg
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = clip()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # a freshly initialised model would not give the same output
    with torch.no_grad():
        assert not torch.allclose(STPR(model.cfg).eval()(x), model(x))


def test_metadata_and_atomic_write(saved, tmp_path):
    model, path = saved
    meta = read_metadata(path)
    assert json.loads(meta["stpr_config"]) == model.cfg.to_dict()
    assert json.loads(meta["step"]) == 12 and json.loads(meta["note"]) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp file left
    # overwriting in place works
    save_model(trained_like(seed=1, frames=3), path)
    assert not torch.equal(load_model(path).encoder.body[0].weight, model.encoder.body[0].weight)


def test_inference_overrides(saved):
    model, path = saved
    m1 = load_model(path, frames=1, flow_mode="zero")
    assert m1.cfg.frames == 1 and m1.cfg.flow_mode == "zero"
    assert torch.equal(m1.encoder.body[0].weight, model.encoder.body[0].weight)
    with pytest.raises(ModelError):
        load_model(path, frames=2)
    with pytest.raises(ModelError):
        load_model(path, no_such_option=1)


def test_model_names_resolve_to_the_shipped_files_unless_a_file_has_that_name(tmp_path, monkeypatch, saved):
    monkeypatch.chdir(tmp_path)
    assert resolve_weights(None) == resolve_weights("") == resolve_weights("quality") == DEFAULT_WEIGHTS
    assert resolve_weights("fast") == MODELS["fast"] != DEFAULT_WEIGHTS
    assert resolve_weights("runs/x.safetensors") == Path("runs/x.safetensors")
    model, path = saved
    Path("fast").write_bytes(path.read_bytes())  # a file the user named "fast" wins
    assert resolve_weights("fast") == Path("fast")
    assert load_model("fast").cfg == model.cfg
    with pytest.raises(ModelError, match="the shipped models are quality, fast"):
        load_model("qualty")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelError):
        load_model(tmp_path)  # a directory is not a weights file


@pytest.mark.parametrize("n", [0, 5, 8, 300, 4096])
def test_random_bytes(tmp_path, n):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n),
                                   dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(ModelError):
        load_model(path)


def test_broken_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    body = b"{not json"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ModelError):
        load_model(path)


def test_safetensors_without_stpr_metadata(tmp_path, saved):
    model, _ = saved
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(ModelError, match="stpr_config"):
        load_model(path)
    path2 = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path2), metadata={"format": "pt"})
    with pytest.raises(ModelError):
        load_model(path2)


def test_bad_config_json(tmp_path, saved):
    _, src = saved
    state = load_file(str(src))
    path = tmp_path / "badcfg.safetensors"
    save_file(state, str(path), metadata={"stpr_config": "{broken"})
    with pytest.raises(ModelError):
        load_model(path)
    save_file(state, str(path), metadata={"stpr_config": json.dumps({"frames": 3, "bogus": 1})})
    with pytest.raises(ModelError):
        load_model(path)


@pytest.mark.parametrize("edit", [{"channels": 16}, {"prrd_layers": 3}, {"flow_levels": 3, "flow_channels": [4, 4, 4]},
                                  {"prrd_scales": 2}])
def test_different_architecture(tmp_path, saved, edit):
    _, src = saved
    state = load_file(str(src))
    meta = read_metadata(src)
    cfg = json.loads(meta["stpr_config"])
    cfg.update(edit)
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path), metadata={**meta, "stpr_config": json.dumps(cfg)})
    with pytest.raises(ModelError, match="does not match"):
        load_model(path)


def test_missing_and_extra_tensors(tmp_path, saved):
    _, src = saved
    state = load_file(str(src))
    meta = read_metadata(src)
    fewer = dict(state)
    fewer.pop(next(iter(fewer)))
    path = tmp_path / "fewer.safetensors"
    save_file(fewer, str(path), metadata=meta)
    with pytest.raises(ModelError):
        load_model(path)
    more = {**state, "extra.weight": torch.zeros(2)}
    save_file(more, str(path), metadata=meta)
    with pytest.raises(ModelError):
        load_model(path)


@pytest.mark.parametrize("cfg_json", ["[1, 2]", "null", json.dumps({"channels": "8"}), json.dumps({"channels": -1})])
def test_malformed_config_is_a_model_error(tmp_path, saved, cfg_json):
    _, src = saved
    path = tmp_path / "malformed.safetensors"
    save_file(load_file(str(src)), str(path), metadata={"stpr_config": cfg_json})
    with pytest.raises(ModelError):
        load_model(path)


def test_shipped_weights_are_the_default_architecture():
    """The bundled model loads without a path, is built from STPRConfig's defaults (so the
    documented default and the shipped weights cannot drift apart) plus its two looks (a training
    choice, not a default: configs without looks keep building the models they built) and lifts a
    dark frame."""
    import dataclasses

    from stpr.models.stpr_arch import STPRConfig

    model = load_model()
    assert model.cfg.looks == ("natural", "lol")
    assert dataclasses.replace(model.cfg, looks=()) == STPRConfig()
    assert 0.0 < float(read_metadata(DEFAULT_WEIGHTS)["val_lol_psnr"]) < 100.0
    g = torch.Generator().manual_seed(0)
    clip = (torch.rand(1, 3, 3, 48, 64, generator=g) * 0.06).clamp(0, 1)
    with torch.no_grad():
        out = model(clip)
    assert out.shape == (1, 3, 48, 64)
    assert out.mean() > 4 * clip.mean()


def test_shipped_fast_model_is_the_fast_layout_at_a_fifth_of_the_cost():
    """``--model fast`` loads the fast network (strided encoder, flow from 1/8 resolution, no pixel
    fusion), costs at most a fifth of the quality model's FLOPs and lifts a dark frame."""
    from stpr.bench import model_gflops

    assert MODELS["fast"].is_file()
    model = load_model("fast")
    cfg = model.cfg
    assert (cfg.encoder, cfg.flow_stride, cfg.pixel_fusion, cfg.frames) == ("strided", 8, False, 3)
    assert model_gflops("fast", 640, 360)[0] < 0.2 * model_gflops(None, 640, 360)[0]
    g = torch.Generator().manual_seed(0)
    clip = (torch.rand(1, 3, 3, 48, 64, generator=g) * 0.06).clamp(0, 1)
    with torch.no_grad():
        out = model(clip)
    assert out.shape == (1, 3, 48, 64) and out.mean() > 4 * clip.mean()


def save_with_config(model: STPR, tmp_path: Path, drop: tuple[str, ...] = (), add: dict | None = None) -> Path:
    """Save ``model`` with ``drop`` missing from its stored config and ``add`` added, as an older
    stpr wrote it."""
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    meta = read_metadata(path)
    cfg = json.loads(meta["stpr_config"])
    for key in drop:
        del cfg[key]
    cfg.update(add or {})
    meta["stpr_config"] = json.dumps(cfg)
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata=meta)
    return old


# the retired options as weights written before their removal store them (all off)
RETIRED_OFF = {"flow_corr_radius": 0, "temporal_residual": False, "temporal_hidden": 0, "linear_light": False,
               "refine_channels": 0, "recurrent": False, "recurrent_cap": 8.0, "feature_recurrent": False}


def test_weights_naming_retired_options_switched_off_still_load(tmp_path):
    """Weights written before the options were retired (v3 to v7) name them all, switched off: they
    load as the same model and give the same output."""
    model = trained_like(frames=3)
    loaded = load_model(save_with_config(model, tmp_path, add=RETIRED_OFF))
    assert loaded.cfg == model.cfg
    x = clip(1)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("on", [{"recurrent": True}, {"feature_recurrent": True}, {"linear_light": True},
                                {"refine_channels": 12}, {"temporal_residual": True}, {"flow_corr_radius": 1}])
def test_weights_made_with_a_retired_option_are_refused_in_one_line(tmp_path, on):
    (name, _), = on.items()
    path = save_with_config(trained_like(frames=3), tmp_path, add={**RETIRED_OFF, **on})
    with pytest.raises(ModelError, match=f"{name} = .*retired.*50d3f5c") as e:
        load_model(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_weights_saved_before_pixel_fusion_still_load(tmp_path):
    """Weights files written before the pixel_fusion option have no such key in their config: they
    must load as the architecture they were trained with (no pixel fusion), not the new default."""
    model = trained_like(frames=3, pixel_fusion=False)
    loaded = load_model(save_with_config(model, tmp_path, drop=("pixel_fusion",)))
    assert loaded.cfg.pixel_fusion is False
    x = clip(1)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_interpolate_weights_blends_every_tensor(tmp_path):
    from stpr.checkpoint import interpolate_weights

    a, b = trained_like(seed=0, frames=3), trained_like(seed=1, frames=3)
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_model(a, pa)
    save_model(b, pb)
    sa, sb = a.state_dict(), b.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
    for alpha in (0.0, 0.25, 1.0):
        mixed = interpolate_weights(pa, pb, alpha).state_dict()
        for k in sa:
            torch.testing.assert_close(mixed[k], (1 - alpha) * sa[k] + alpha * sb[k])
    # the midpoint's output differs from both ends: the blend reaches the forward pass
    x = clip()
    with torch.no_grad():
        outs = [interpolate_weights(pa, pb, t)(x) for t in (0.0, 0.5, 1.0)]
    assert not torch.allclose(outs[1], outs[0]) and not torch.allclose(outs[1], outs[2])


def test_interpolate_weights_refuses_other_architectures_and_bad_alpha(tmp_path):
    from stpr.checkpoint import interpolate_weights

    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_model(trained_like(frames=3), pa)
    save_model(trained_like(frames=1), pb)
    with pytest.raises(ModelError, match="different model configs"):
        interpolate_weights(pa, pb, 0.5)
    with pytest.raises(ModelError, match="alpha"):
        interpolate_weights(pa, pa, 1.5)
    with pytest.raises(ModelError, match="not found"):
        interpolate_weights(pa, tmp_path / "missing.safetensors", 0.5)


def test_average_weights_script_writes_metadata_and_never_overwrites_an_input(tmp_path):
    """scripts/average_weights.py: the averaged file records its inputs and the --set figures;
    --out naming an input is refused with exit 2 and the input is left as it was."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "average_weights.py"
    pa, pb, out = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "out.safetensors"
    save_model(trained_like(seed=0, frames=3), pa)
    save_model(trained_like(seed=1, frames=3), pb)
    r = subprocess.run([sys.executable, str(script), str(pa), str(pb), "--alpha", "0.25", "--out", str(out),
                        "--set", "val_lol_psnr=19.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    meta = read_metadata(out)
    assert json.loads(meta["averaged"])["alpha"] == 0.25
    assert json.loads(meta["val_lol_psnr"]) == 19.5
    load_model(out)  # a complete, loadable weights file
    before = pa.read_bytes()
    r = subprocess.run([sys.executable, str(script), str(pa), str(pb), "--out", str(pa)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "must not be one of the inputs" in r.stderr
    assert pa.read_bytes() == before
    r = subprocess.run([sys.executable, str(script), str(pa), str(tmp_path / "nope.safetensors"), "--out",
                        str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert r.returncode == 4 and "not found" in r.stderr and not (tmp_path / "x.safetensors").exists()
