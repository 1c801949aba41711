"""``stpr bench``: a tiny end-to-end run prints the table (nothing about time is asserted)."""

from __future__ import annotations

import json

import pytest

from stpr.bench import format_table, make_clip, matmul_peak_gflops, model_gflops, parse_sizes
from stpr.cli import main
from stpr.errors import UsageError
from stpr.hardware import cpu_has_fast_bf16
from stpr.io import open_input

from helpers import save_weights, tiny


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Overrides conftest's: an untrained tiny model (output heads still zero)."""
    return save_weights(tmp_path_factory, tiny())


def test_parse_sizes():
    assert parse_sizes("64x48, 1280x720") == [(64, 48), (1280, 720)]
    assert parse_sizes(None)[-1] == (3840, 2160)
    for bad in ("64", "63x48", "axb", ""):
        with pytest.raises(UsageError):
            parse_sizes(bad)


def test_make_clip(tmp_path):
    make_clip(tmp_path / "c.mp4", 64, 48, 3)
    with open_input(tmp_path / "c.mp4") as r:
        frames = [f.rgb for f in r]
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    assert frames[0].mean() < 60  # dark


def test_model_gflops_scales_with_pixels(weights):
    g1, _ = model_gflops(weights, 64, 64)
    g4, _ = model_gflops(weights, 128, 128)
    assert g1 > 0 and g4 == pytest.approx(4 * g1, rel=0.02)
    g_single, _ = model_gflops(weights, 64, 64, frames=1)
    assert g_single < g1  # no neighbours to propagate


def test_matmul_peak_positive():
    assert matmul_peak_gflops(n=256, reps=2) > 0


@pytest.mark.parametrize("budget_s, sizes", [(0.0, [256, 256, 256]), (1e9, [256, 512, 1024, 1024, 1024])])
def test_matmul_peak_grows_the_size_only_while_a_product_is_quick(monkeypatch, budget_s, sizes):
    """An emulated bfloat16 matmul (~1 GFLOP/s) must not be measured at 2048²: minutes, not seconds."""
    import torch

    seen, matmul = [], torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda a, b: seen.append(a.shape[0]) or matmul(a, b))
    assert matmul_peak_gflops(n=1024, reps=2, budget_s=budget_s) > 0
    assert seen == sizes


def test_bench_cli_tiny(tmp_path, weights, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64x48", "--frames", "3", "--methods", "stpr,lime", "--model", str(weights),
                 "--threads", "1", "--engines", "torch", "--precisions", "fp32", "--repeat", "2", "--durations", "0.12,0.4",
                 "--duration-size", "64x48", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| size | method |" in printed and "| 64x48 | stpr | torch | cpu | fp32 | 3 |" in printed
    assert "| 64x48 | lime | – | cpu | – | 3 |" in printed and "| video length |" in printed
    data = json.loads(out.read_text())
    assert data["machine"]["matmul_peak_gflops"] > 0 and data["repeat"] == 2
    assert data["machine"]["cpu_native_bf16"] is cpu_has_fast_bf16()  # which precision auto means here
    rows = {r["method"]: r for r in data["results"]}
    assert set(rows) == {"stpr", "lime"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["frames"] == 3 and r["fps"] > 0 and r["peak_rss_mb"] > 0 and len(r["fps_runs"]) == 2
        assert r["peak_rss_mb"] >= r["rss_start_mb"]
        assert min(r["fps_runs"]) <= r["fps"] <= max(r["fps_runs"])
    assert rows["stpr"]["gflops_per_frame"] > 0 and rows["stpr"]["peak_fraction"] > 0
    assert "gflops_per_frame" not in rows["lime"]
    assert [d["frames"] for d in data["durations"]] == [3, 10]


def test_bench_compares_engines(tmp_path, weights, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64x48", "--frames", "3", "--methods", "stpr", "--model", str(weights),
                 "--threads", "1", "--engines", "torch,onnx", "--repeat", "1", "--no-io-threads", "--json", str(out),
                 "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert [r["engine"] for r in data["results"]] == ["torch", "onnx"] and not data["io_threads"]
    assert all("error" not in r and r["fps"] > 0 for r in data["results"])


def test_bench_compares_precisions(tmp_path, weights, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64x48", "--frames", "3", "--methods", "stpr", "--model", str(weights),
                 "--threads", "1", "--engines", "torch", "--precisions", "fp32,bf16", "--device", "cpu",
                 "--repeat", "1", "--preset", "ultrafast", "--json", str(out), "--quiet"]) == 0
    assert "preset ultrafast" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["machine"]["preset"] == "ultrafast"
    assert [(r["device"], r["precision"]) for r in data["results"]] == [("cpu", "fp32"), ("cpu", "bf16")]
    assert all("error" not in r and r["fps"] > 0 for r in data["results"])
    assert set(data["machine"]["matmul_peaks_gflops"]) == {"fp32", "bf16"}


@pytest.mark.parametrize("args", [["--repeat", "0"], ["--engines", "tensorrt"], ["--durations", "ten"],
                                  ["--durations", "-1"], ["--precisions", "int4"],
                                  ["--precisions", "fp16", "--device", "cpu"], ["--device", "tpu"],
                                  ["--preset", "warp9"]])
def test_bench_bad_options(args, weights):
    assert main(["bench", "--sizes", "64x48", "--model", str(weights), "--quiet", *args]) == 2


def test_bench_json_in_a_missing_folder_fails_before_measuring(tmp_path, weights, monkeypatch, capsys):
    import stpr.bench

    monkeypatch.setattr(stpr.bench, "run_bench", lambda *a, **k: pytest.fail("measured"))
    assert main(["bench", "--sizes", "64x48", "--model", str(weights), "--quiet",
                 "--json", str(tmp_path / "missing" / "b.json")]) == 5
    assert "does not exist" in capsys.readouterr().err


def test_format_table_reports_errors():
    table = format_table([{"size": "64x48", "method": "stpr", "error": "boom"}], {"fp32": 10.0, "bf16": 30.0})
    assert "error: boom" in table and "fp32 10.0 GFLOP/s, bf16 30.0 GFLOP/s" in table


def test_side_by_side_bench(tmp_path, weights, capsys):
    out = tmp_path / "shared.json"
    assert main(["bench", "--side-by-side", "2", "--sizes", "64x48", "--frames", "3", "--repeat", "1",
                 "--model", str(weights), "--threads", "1", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| size | OpenMP wait |" in printed and "spinning (GOMP_SPINCOUNT=300000)" in printed
    rows = json.loads(out.read_text())
    assert [r["policy"].split()[0] for r in rows] == ["stpr", "spinning"]
    for r in rows:
        assert "error" not in r, r
        assert r["jobs"] == 2 and r["solo_seconds"] > 0 and r["shared_cpu"] > 0
        assert r["slowdown"] == pytest.approx(r["shared_seconds"] / r["solo_seconds"])


def test_side_by_side_needs_two_jobs(weights):
    assert main(["bench", "--side-by-side", "1", "--sizes", "64x48", "--model", str(weights), "--quiet"]) == 2


def test_bench_marginal_rate(tmp_path, weights, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64x48", "--frames", "6", "--methods", "stpr,lime", "--model", str(weights),
                 "--threads", "1", "--engines", "torch", "--precisions", "fp32", "--repeat", "1", "--marginal",
                 "--preset", "ultrafast", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "marginal frames/s" in printed and "a third as long" in printed
    data = json.loads(out.read_text())
    assert data["marginal"]
    for r in data["results"]:
        assert "error" not in r, r
        assert r["marginal_frames"] == [2, 6] and r["frames"] == 6
        # None only where the short clip took as long as the long one (timer noise on a tiny clip)
        assert r["marginal_fps"] is None or r["marginal_fps"] > 0


def test_format_table_marginal_column_only_when_measured():
    row = {"size": "64x48", "method": "lime", "engine": None, "device": "cpu", "precision": "–", "frames": 6,
           "fps": 10.0, "model_fps": 20.0, "peak_rss_mb": 100.0, "rss_start_mb": 90.0}
    assert "marginal" not in format_table([row], None)
    table = format_table([{**row, "marginal_fps": 12.5}], None)
    header, rule, line = table.splitlines()[-3:]
    assert "marginal frames/s" in header and "| 10.00 | 12.50 | 20.00 |" in line
    assert header.count("|") == rule.count("|") == line.count("|")
