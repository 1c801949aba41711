"""stpr.evaluate: the scores of ``eval_video`` (its model replaced by fixed outputs)."""

import numpy as np
import torch

from stpr import evaluate


def _patch_outputs(monkeypatch, outs):
    monkeypatch.setattr(evaluate, "enhance_sequence", lambda model, frames: outs)


def test_eval_video_affine_psnr_takes_the_tone_out(monkeypatch):
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    # A hazy, dim version of the truth: plain PSNR is poor, the affine-fitted one near perfect.
    outs = [evaluate.to_tensor(c) * 0.5 + 0.25 for c in clean]
    _patch_outputs(monkeypatch, outs)
    r = evaluate.eval_video(None, clean, clean)
    assert r["n"] == 3
    assert r["psnr"] < 20
    assert r["psnr_affine"] > 60


def test_eval_video_affine_psnr_does_not_remove_noise(monkeypatch):
    rng = np.random.default_rng(1)
    clean = rng.integers(40, 216, (2, 24, 24, 3), dtype=np.uint8)
    gen = torch.Generator().manual_seed(0)
    outs = [evaluate.to_tensor(c) + 0.05 * torch.randn(1, 3, 24, 24, generator=gen) for c in clean]
    _patch_outputs(monkeypatch, outs)
    r = evaluate.eval_video(None, clean, clean)
    # Zero-mean noise has no tone to fit: both scores near 26 dB (0.05 std), the fit no more than
    # a few tenths better.
    assert 24 < r["psnr"] < 28
    assert r["psnr"] - 0.01 <= r["psnr_affine"] < r["psnr"] + 0.5
