"""``stpr eval``: paired and unpaired runs write the Markdown/CSV/JSON report and the pictures."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from stpr.cli import main
from stpr.metrics.video import mean_brightness
from stpr.report import _against_gt

from helpers import save_weights, tiny_model
from media import write_test_video

ALL = ["stpr", "stpr-perframe", "gamma-clahe", "gamma-clahe-temporal", "lime"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Overrides conftest's: reconstruction heads woken, flow heads left at zero."""
    return save_weights(tmp_path_factory, tiny_model(flow_heads=False))


def clean_clip(n=4, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h + 8, w + 8 + n)), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return [(np.stack([tex[4:4 + h, i:i + w]] * 3, -1) * [230, 200, 170] + 10).astype(np.uint8) for i in range(n)]


def darken(frames, seed=1):
    rng = np.random.default_rng(seed)
    return [np.clip(f * 0.1 + rng.normal(0, 1.5, f.shape), 0, 255).astype(np.uint8) for f in frames]


def write_folder(path, frames):
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(path / f"{i:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return path


def check_report(out, methods, paired, temporal):
    for name in ("results.md", "results.csv", "results.json", "metrics.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert data["mode"] == ("paired" if paired else "unpaired")
    assert data["methods"] == methods
    summary = data["summary"]
    for m in methods:
        s = summary[m]
        assert s["brightness"] > summary["input"]["brightness"]
        if paired:
            assert 0 < s["psnr"] < 100 and -1 <= s["ssim"] <= 1
            assert "psnr_y" in s and "ssim_y" in s
        if temporal:
            assert s["ewarp"] >= 0 and s["flicker_ratio"] > 0 and s["flicker_lowpass"] > 0 and s["mabd"] >= 0
            if paired:
                assert s["mabd_mse"] >= 0
    for seq in data["sequences"]:
        assert (out / data["images"]["sequences"][seq["name"]]["strip"]).is_file()
        if temporal:
            assert (out / data["images"]["sequences"][seq["name"]]["profile"]).is_file()
        for m in methods:
            assert len(seq["results"][m]["frames"]) == seq["num_frames"]
    md = (out / "results.md").read_text()
    for m in methods:
        assert f"**{m}**" in md
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["method"] for r in rows} >= set(methods)
    assert any(r["sequence"] == "ALL" for r in rows)
    img = cv2.imread(str(out / data["images"]["sequences"][data["sequences"][0]["name"]]["strip"]))
    assert img is not None and img.shape[1] > img.shape[0]
    return data


def test_eval_paired_folders(tmp_path, weights, capsys):
    clean = clean_clip()
    inp = write_folder(tmp_path / "dark", darken(clean))
    gt = write_folder(tmp_path / "gt", clean)
    out = tmp_path / "report"
    assert main(["eval", str(inp), "--gt", str(gt), "--model", str(weights), "--out", str(out), "--threads", "1"]) == 0
    data = check_report(out, ALL, paired=True, temporal=True)
    seq = data["sequences"][0]
    assert seq["num_frames"] == 4
    assert len(seq["results"]["stpr"]["frames"]) == 4 and "psnr_y" in seq["results"]["stpr"]["frames"][0]
    assert data["summary"]["gt"]["ewarp"] < data["summary"]["input"]["ewarp"] * 1000  # reference row present
    # the dark input's blacks sit below the truth's; the truth is not scored against itself
    assert data["summary"]["input"]["black_vs_gt"] < 0 and "black_vs_gt" not in data["summary"]["gt"]
    assert "saturation_vs_gt" in data["summary"]["stpr"]
    printed = capsys.readouterr().out
    assert "| method |" in printed
    if data["lpips_skipped"]:
        assert "LPIPS skipped:" in printed and "LPIPS skipped:" in (out / "results.md").read_text()


def test_against_gt_sees_haze_and_washed_out_colour():
    gt = clean_clip(2)
    same = _against_gt(gt, gt, mean_brightness(gt))
    assert same["black_vs_gt"] == 0 and same["saturation_vs_gt"] == pytest.approx(1.0)
    # haze: blacks lifted, colour diluted toward grey
    hazy = [(f * 0.7 + 60).astype(np.uint8) for f in gt]
    got = _against_gt(hazy, gt, mean_brightness(hazy))
    assert got["black_vs_gt"] > 20 and got["saturation_vs_gt"] < 0.8
    # a darker exposure of the same picture is not crushed blacks
    darker = [(f * 0.5).astype(np.uint8) for f in gt]
    assert abs(_against_gt(darker, gt, mean_brightness(darker))["black_vs_gt"]) < 2


def test_eval_unpaired_clips(tmp_path, weights):
    root = tmp_path / "clips"
    for k in range(2):
        write_folder(root / f"clip{k}", darken(clean_clip(3, seed=k), seed=k))
    out = tmp_path / "report"
    methods = ["stpr", "gamma-clahe-temporal", "lime"]
    assert main(["eval", "--clips", str(root), "--methods", ",".join(methods), "--model", str(weights),
                 "--out", str(out), "--quiet", "--threads", "1"]) == 0
    data = check_report(out, methods, paired=False, temporal=True)
    assert [s["name"] for s in data["sequences"]] == ["clip0", "clip1"]
    assert "psnr" not in data["summary"]["lime"]


def test_eval_unpaired_video_and_synthetic(tmp_path, weights):
    clip = tmp_path / "clean.mp4"
    write_test_video(clip, clean_clip(4, h=48, w=64))
    out = tmp_path / "syn"
    assert main(["eval", "--synthetic", str(clip), "--max-frames", "3", "--methods", "stpr,gamma-clahe",
                 "--model", str(weights), "--out", str(out), "--quiet", "--threads", "1"]) == 0
    data = check_report(out, ["stpr", "gamma-clahe"], paired=True, temporal=True)
    assert data["sequences"][0]["num_frames"] == 3
    out_j = tmp_path / "syn_jumps"
    assert main(["eval", "--synthetic", str(clip), "--exposure-jumps", "--max-frames", "3", "--methods", "gamma-clahe",
                 "--out", str(out_j), "--quiet", "--threads", "1"]) == 0
    jumps = check_report(out_j, ["gamma-clahe"], paired=True, temporal=True)
    assert jumps["sequences"][0]["name"].endswith("_synthetic_jumps")
    # the input now alternates dark / bright: its brightness differs from the steady camera's frames
    assert jumps["summary"]["input"]["psnr"] != data["summary"]["input"]["psnr"]
    assert main(["eval", str(clip), "--exposure-jumps", "--methods", "lime", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2  # only with --synthetic

    dark = tmp_path / "dark.mp4"
    write_test_video(dark, darken(clean_clip(3, h=48, w=64)))
    out2 = tmp_path / "unp"
    assert main(["eval", str(dark), "--methods", "lime", "--out", str(out2), "--quiet"]) == 0
    check_report(out2, ["lime"], paired=False, temporal=True)


def test_eval_lol_single_frames(tmp_path, weights):
    root = tmp_path / "lol"
    clean = clean_clip(1, h=24, w=32)[0]
    for k in range(32):
        (root / "low").mkdir(parents=True, exist_ok=True)
        (root / "high").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "low" / f"{k + 1}.png"), cv2.cvtColor(darken([clean], seed=k)[0], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "high" / f"{k + 1}.png"), cv2.cvtColor(clean, cv2.COLOR_RGB2BGR))
    out = tmp_path / "lolrep"
    assert main(["eval", "--lol", str(root), "--limit", "2", "--methods", "stpr,gamma-clahe", "--model",
                 str(weights), "--out", str(out), "--quiet", "--threads", "1"]) == 0
    data = check_report(out, ["stpr", "gamma-clahe"], paired=True, temporal=False)
    assert [s["name"] for s in data["sequences"]] == ["3", "4"]  # held-out = the last 30 of 32
    assert "ewarp" not in data["summary"]["stpr"]


def test_eval_brightness_holds_both_stpr_variants_at_the_level(tmp_path, weights):
    """``--brightness Y`` scores the STPR methods with their output held at Y (e.g. flicker at the
    level a target names), as ``stpr enhance --brightness`` would; the report records it."""
    root = tmp_path / "clips"
    write_folder(root / "clip0", darken(clean_clip(4, seed=3), seed=3))
    levels = {}
    for y in (None, 60.0, 150.0):
        out = tmp_path / f"report_{y}"
        extra = [] if y is None else ["--brightness", f"{y:g}"]
        assert main(["eval", "--clips", str(root), "--methods", "stpr,stpr-perframe", "--model", str(weights),
                     "--out", str(out), "--quiet", "--threads", "1", *extra]) == 0
        data = json.loads((out / "results.json").read_text())
        assert data["brightness"] == y
        levels[y] = {m: data["summary"][m]["brightness"] for m in ("stpr", "stpr-perframe")}
        if y is not None:
            assert f"mean brightness **{y:g}**" in (out / "results.md").read_text()
            for m, b in levels[y].items():
                assert abs(b - y) < 6, (m, b)
    assert levels[60.0]["stpr"] < levels[150.0]["stpr"] - 60


def test_eval_usage_errors(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert main(["eval", str(tmp_path), "--clips", str(tmp_path)]) == 2
    assert main(["eval", str(tmp_path), "--methods", "nope"]) == 2
    assert main(["eval", str(tmp_path / "missing.mp4"), "--methods", "lime"]) == 3
    assert main(["eval", str(tmp_path / "missing.mp4"), "--brightness", "300"]) == 2  # checked before the input
    err = capsys.readouterr().err
    assert "stpr: error:" in err


@pytest.mark.parametrize("where", ["a_file", "a_file/report"])
def test_eval_report_folder_that_cannot_be_made_fails_before_the_evaluation(tmp_path, monkeypatch, capsys, where):
    """The report is written after the evaluation (an hour for the LOL split): a bad --out used to
    surface only then."""
    (tmp_path / "a_file").write_text("x")
    import stpr.report

    monkeypatch.setattr(stpr.report, "_run_eval", lambda *a, **k: pytest.fail("evaluated"))
    assert main(["eval", str(tmp_path / "in.mp4"), "--methods", "lime", "--out", str(tmp_path / where)]) == 5
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "x"


def test_eval_lol_sibling_split(tmp_path, tmp_path_factory):
    """--lol-split siblings scores the pairs a training config's lol_siblings holds out, in the look
    asked for; a folder without scenes shot twice is a one-line input error."""
    from helpers import texture, write_rgb
    from test_models import _with_looks

    root = tmp_path / "lol"
    for k in range(90):  # scenes of two shots each: 1-2, 3-4, ...; the last 30 pairs are the block
        high = texture(24, 32, seed=k // 2)
        write_rgb(root / "high" / f"{k + 1}.png", high)
        write_rgb(root / "low" / f"{k + 1}.png", (high // 10).astype(np.uint8))
    weights = save_weights(tmp_path_factory, _with_looks())
    reps = {}
    for look in ("natural", "lol"):
        out = tmp_path / look
        assert main(["eval", "--lol", str(root), "--lol-split", "siblings", "--methods", "stpr", "--model",
                     str(weights), "--look", look, "--out", str(out), "--quiet", "--threads", "1"]) == 0
        reps[look] = json.loads((out / "results.json").read_text())
    names = [s["name"] for s in reps["lol"]["sequences"]]
    assert len(names) == 30 and len({(int(n) - 1) // 2 for n in names}) == 30  # one shot of each scene in 1-60
    assert all(int(n) <= 60 for n in names)
    assert reps["lol"]["look"] == "lol" and "look: **lol**" in (tmp_path / "lol" / "results.md").read_text()
    assert reps["lol"]["summary"]["stpr"]["psnr"] != reps["natural"]["summary"]["stpr"]["psnr"]
    single = tmp_path / "single"
    for k in range(3):
        write_rgb(single / "high" / f"{k}.png", texture(24, 32, seed=k))
        write_rgb(single / "low" / f"{k}.png", texture(24, 32, seed=k) // 10)
    assert main(["eval", "--lol", str(single), "--lol-split", "siblings", "--methods", "lime", "--out",
                 str(tmp_path / "s"), "--quiet"]) == 3
