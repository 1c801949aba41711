"""experiments/widen.py: a wider STPR started from a narrower one computes what the narrow one does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _widen():
    spec = importlib.util.spec_from_file_location("widen", ROOT / "experiments" / "widen.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["widen"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("looks", [(), ("natural", "lol")])
def test_widened_model_computes_what_the_narrow_one_does(looks):
    w = _widen()
    narrow = tiny_model(seed=1, looks=looks)
    c, g = narrow.cfg.channels, narrow.cfg.prrd_growth
    wide = tiny(seed=2, channels=2 * c, prrd_growth=2 * g, looks=looks).eval()
    wide.load_state_dict(w.widen_state(narrow.state_dict(), wide.state_dict(), {w.C: c, w.G: g},
                                       {w.C: 2 * c, w.G: 2 * g}, narrow.cfg.prrd_layers))
    clip = torch.rand(2, narrow.cfg.frames, 3, 24, 40, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        assert torch.allclose(wide(clip), narrow(clip), atol=1e-5)
    # the new channels are alive: a loss reaches the weights that read them
    wide.train()
    wide(clip).square().mean().backward()
    grad = wide.reconstruction.body[0].weight.grad
    assert grad[:, c:2 * c].abs().sum() > 0  # the propagated features' new channels


def test_a_layout_that_does_not_fit_is_an_error():
    w = _widen()
    narrow = tiny_model(seed=1)
    c, g = narrow.cfg.channels, narrow.cfg.prrd_growth
    wide = tiny(seed=2, channels=2 * c, prrd_growth=2 * g)
    with pytest.raises(ValueError, match="layout"):
        # growth claimed unchanged: the dense layers' shapes contradict it
        w.widen_state(narrow.state_dict(), wide.state_dict(), {w.C: c, w.G: g}, {w.C: 2 * c, w.G: g},
                      narrow.cfg.prrd_layers)
