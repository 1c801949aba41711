"""Plain helpers shared by the test modules: ``from helpers import ...``.

``tests/`` has no ``__init__.py``, so pytest (default "prepend" import mode) puts it on ``sys.path``
and this module imports like a top-level one. Shared fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from stpr.checkpoint import save_model
from stpr.models.stpr_arch import STPR, STPRConfig

# A tiny STPR: fast enough for CPU tests, every part of the network still there.
TINY = dict(channels=8, flow_channels=(4, 4, 4, 4), flow_levels=4, flow_hidden=8, prrd_growth=4, prrd_layers=2)


# ------------------------------------------------------------------------------------------ models


def tiny(seed: int = 0, **kw) -> STPR:
    """A freshly initialised tiny STPR (``kw`` overrides TINY), in training mode."""
    torch.manual_seed(seed)
    return STPR(STPRConfig(**{**TINY, **kw}))


def tiny_model(seed: int = 0, flow_heads: bool = True, **kw) -> STPR:
    """A tiny STPR in eval mode whose zero-initialised output heads got random weights, so the tests
    see a real network (``flow_heads=False``: the reconstruction heads only)."""
    m = tiny(seed, **kw)
    with torch.no_grad():
        rec = m.reconstruction
        # in this order (the random draws every test model was made with), the absent ones skipped
        heads = [h for h in (rec.residual, rec.local_gain, rec.global_gain[-1]) if h is not None]
        heads += [rec.blend[-1]] if rec.blend is not None else []
        for layer in heads:
            layer.weight.normal_(0, 0.05)
        if flow_heads:
            for head in m.flow_net.heads:
                head[-1].weight.normal_(0, 0.01)
    return m.eval()


def save_weights(tmp_path_factory, model: STPR) -> Path:
    """``model`` saved as ``tiny.safetensors`` in a fresh temporary folder."""
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_model(model, path)
    return path


# ------------------------------------------------------------------------------------------ media


def dark_clip(n=6, h=40, w=56, seed=0):
    """(n, h, w, 3) uint8: a dark random frame with a little per-frame noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 50, size=(h, w, 3))
    return np.stack([np.clip(base + rng.integers(-5, 6, size=base.shape), 0, 255) for _ in range(n)]).astype(np.uint8)


def texture(h: int, w: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """Smooth random RGB texture, uint8, with plenty of contrast."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), sigma)
    return np.clip((img - img.mean()) * 5 + 128, 0, 255).astype(np.uint8)


def write_rgb(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def make_lol(root: Path, names=("1", "2", "3"), h: int = 48, w: int = 64) -> Path:
    """LOL-style folder: low/<name>.png, high/<name>.png with low = high * 0.1 + noise."""
    rng = np.random.default_rng(0)
    for k, n in enumerate(names):
        high = texture(h, w, seed=k)
        low = np.clip(high * 0.1 + rng.normal(0, 2.0, high.shape), 0, 255).astype(np.uint8)
        write_rgb(root / "low" / f"{n}.png", low)
        write_rgb(root / "high" / f"{n}.png", high)
    return root


# ------------------------------------------------------------------------------------------ training runs


def read_log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_close(a: dict, b: dict, atol: float):
    """Two state dicts with the same keys and values within ``atol``."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=atol), (k, (a[k] - b[k]).abs().max().item())


def assert_runs_in_child(code: str, timeout: float = 120) -> None:
    """Run Python ``code`` in a child process and require a clean exit: for code that may crash
    the interpreter (a segfault in a native library) and must fail one test, not the whole run."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
