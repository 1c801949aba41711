"""Property tests (hypothesis): low-light synthesis, metrics, padding/tiling and the CLI parser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stpr.cli import build_parser, main
from stpr.data.synthesis import DarkParams, darken_clip, darken_frame
from stpr.enhance import Enhancer
from stpr.metrics import psnr, psnr_rgb, psnr_y, ssim, ssim_rgb, ssim_y

from helpers import tiny_model

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def image(seed: int, h: int, w: int, lo: int = 0, hi: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=(h, w, 3)).astype(np.uint8)


# ------------------------------------------------------------------------------------------ synthesis


params = st.builds(
    DarkParams,
    exposure=st.floats(0.01, 0.3),
    full_well=st.floats(300.0, 3000.0),
    read_noise=st.floats(3e-4, 4e-3),
    wb_gains=st.tuples(*[st.floats(0.8, 1.25)] * 3),
    flicker=st.floats(0.0, 0.05),
)


@FEW
@given(p=params, seed=st.integers(0, 2**32 - 1), h=st.integers(1, 24), w=st.integers(1, 24))
def test_darkened_frames_are_uint8_of_the_same_shape(p, seed, h, w):
    frame = image(seed, h, w, lo=40)  # not near black, where read noise alone can lift the mean
    out = darken_frame(frame, p, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == frame.shape
    clip = darken_clip(np.stack([frame, frame]), p, np.random.default_rng(seed))
    assert clip.dtype == np.uint8 and clip.shape == (2, h, w, 3)
    # darker than the original on average (exposure <= 0.3, gains <= 1.25)
    assert out.mean() <= frame.mean() + 1.0


@FEW
@given(p=params, seed=st.integers(0, 2**32 - 1), ratio=st.floats(1.5, 10.0))
def test_less_exposure_is_not_brighter(p, seed, ratio):
    """Same scene, same noise seed: dividing the exposure never raises the mean level."""
    frame = image(seed, 32, 32, lo=40)
    lo_p = DarkParams(p.exposure / ratio, p.full_well, p.read_noise, p.wb_gains, p.flicker)
    bright = darken_frame(frame, p, np.random.default_rng(seed))
    dark = darken_frame(frame, lo_p, np.random.default_rng(seed))
    assert dark.mean() <= bright.mean()


# ------------------------------------------------------------------------------------------- metrics


pairs = st.tuples(st.integers(0, 2**32 - 1), st.integers(11, 40), st.integers(11, 40), st.floats(0.0, 1.0))


def pair(seed, h, w, mix):
    a = image(seed, h, w)
    b = np.clip(a * (1 - mix) + image(seed + 1, h, w) * mix, 0, 255).astype(np.uint8)
    return a, b


@FEW
@given(pairs)
def test_numpy_metrics_symmetry_identity_bounds(args):
    a, b = pair(*args)
    for f in (psnr_rgb, psnr_y, ssim_rgb, ssim_y):
        assert f(a, b) == pytest.approx(f(b, a), rel=1e-9, abs=1e-9)
    assert ssim_rgb(a, a) == pytest.approx(1.0, abs=1e-9) and ssim_y(a, a) == pytest.approx(1.0, abs=1e-9)
    assert psnr_rgb(a, a) >= 100 and psnr_y(a, a) >= 100
    assert -1.0 <= ssim_rgb(a, b) <= 1.0 and -1.0 <= ssim_y(a, b) <= 1.0
    assert psnr_rgb(a, b) >= 0.0 and psnr_y(a, b) >= 0.0


@FEW
@given(pairs)
def test_torch_metrics_symmetry_identity_bounds(args):
    a, b = (torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255 for x in pair(*args))
    assert torch.allclose(psnr(a, b), psnr(b, a)) and torch.allclose(ssim(a, b), ssim(b, a))
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-9)
    assert -1.0 <= ssim(a, b).item() <= 1.0 and psnr(a, b).item() >= 0.0
    assert psnr(a, a).item() >= 100


# ------------------------------------------------------------------------------------ padding, tiling


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), lead=st.sampled_from([(1, 3), (2, 3), (1, 2, 3)]))
def test_pad_then_crop_round_trips(model, h, w, lead):
    x = torch.rand(*lead, h, w)
    padded, (ph, pw) = model.pad(x)
    assert (ph, pw) == (h, w)
    assert padded.shape[:-2] == x.shape[:-2]
    assert padded.shape[-2] % model.multiple == 0 and padded.shape[-1] % model.multiple == 0
    assert padded.shape[-2] - h < model.multiple and padded.shape[-1] - w < model.multiple
    assert torch.equal(padded[..., :h, :w], x)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 80), w=st.integers(1, 80), tile=st.sampled_from([0, 32, 64]), n=st.integers(1, 2),
       seed=st.integers(0, 1000))
def test_enhancer_returns_the_input_size(model, h, w, tile, n, seed):
    frames = [image(seed + i, h, w, hi=60) for i in range(n)]
    out = list(Enhancer(model, tile=tile, tile_overlap=16).enhance_frames(frames))
    assert len(out) == n
    assert all(o.shape == (h, w, 3) and o.dtype == np.uint8 for o in out)


# ------------------------------------------------------------------------------------------------ CLI


valid_enhance_flags = st.fixed_dictionaries({}, optional={
    "--frames": st.sampled_from([1, 3, 5, 7]).map(str),
    "--flow": st.sampled_from(["learned", "dis", "zero"]),
    "--codec": st.sampled_from(["libx264", "libx265", "mpeg4"]),
    "--crf": st.integers(0, 63).map(str),
    "--preset": st.sampled_from(["ultrafast", "medium", "slow"]),
    "--tile": st.integers(0, 4096).map(str),
    "--memory-mb": st.integers(1, 100000).map(str),
    "--threads": st.integers(1, 64).map(str),
    "--overwrite": st.none(),
    "--quiet": st.none(),
    "--debug": st.none(),
    "--resume": st.none(),
    "--segment-frames": st.integers(1, 10000).map(str),
    "-o": st.sampled_from(["out.mp4", "dir/out.mkv", "frames", "é ü.png"]),
})


@settings(max_examples=60, deadline=None)
@given(flags=valid_enhance_flags, order=st.randoms(use_true_random=False))
def test_valid_flag_combinations_parse(flags, order):
    argv = []
    items = list(flags.items())
    order.shuffle(items)
    for k, v in items:
        argv += [k] if v is None else [k, v]
    args = build_parser().parse_args(["enhance", "in.mp4", *argv])
    assert args.command == "enhance" and args.input == "in.mp4"
    for k, v in flags.items():
        dest = k.lstrip("-").replace("-", "_")
        dest = "output" if dest == "o" else dest
        got = getattr(args, dest)
        assert got is True if v is None else str(got) == v


bad_numbers = st.sampled_from(["abc", "1.5", "", "1e3", "--", "0x10", "½"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(["--frames", "--crf", "--tile", "--memory-mb", "--threads", "--segment-frames"]),
       value=bad_numbers)
def test_non_numbers_are_usage_errors(flag, value, capsys):
    """argparse rejects them (SystemExit 2, usage + one error line); what slips through its type
    check (argparse turns "--crf=--" into []) is refused by stpr itself: exit 2 too."""
    try:
        code = main(["enhance", "in.mp4", f"{flag}={value}"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and flag in err


out_of_range = st.one_of(
    st.tuples(st.just("--frames"), st.one_of(st.integers(-100, 0), st.integers(1, 50).map(lambda k: 2 * k))),
    st.tuples(st.just("--crf"), st.one_of(st.integers(-1000, -1), st.integers(64, 10**6))),
    st.tuples(st.just("--tile"), st.integers(-10**6, -1)),
    st.tuples(st.just("--memory-mb"), st.integers(-10**6, 0)),
    st.tuples(st.just("--threads"), st.integers(-100, 0)),
    st.tuples(st.just("--segment-frames"), st.integers(-10**6, 0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=out_of_range)
def test_out_of_range_numbers_exit_2_with_one_line(case, capsys, tmp_path):
    flag, value = case
    extra = ["--resume"] if flag == "--segment-frames" else []
    rc = main(["enhance", str(tmp_path / "missing.mp4"), f"{flag}={value}", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith(f"stpr: error: {flag}") and "Traceback" not in err[0]
