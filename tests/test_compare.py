"""``stpr compare``: the page's data and files, and the page itself driven in headless Chromium.

The test clips tell their frames apart by eye and by pixel: the top half of frame i is grey level
``10 + 12 i`` in both clips, the bottom half is 30 in the input (A) and 150 in the output (B). So a
screenshot shows which frame each side presents (top half) and where the wipe is (bottom half).

The browser tests drive Debian's ``chromium`` over the DevTools protocol (``websocket-client``, in
the ``test`` extra) and skip where no Chromium is installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import write_rgb
from media import write_test_video
from stpr.cli import main
from stpr.io import open_input
from stpr.metrics.video import frame_brightness

N, FPS, H, W = 20, 10, 48, 64


def grey_of(index: int) -> int:
    return 10 + 12 * index


def index_of(grey: float) -> int:
    return round((grey - 10) / 12)


def clip(bottom: int, n: int = N, h: int = H, w: int = W) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), bottom, np.uint8)
        f[: h // 2] = grey_of(i)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("clips")
    write_test_video(d / "dark.mp4", clip(30), fps=FPS)
    write_test_video(d / "bright.mp4", clip(150), fps=FPS)
    return d / "dark.mp4", d / "bright.mp4"


def page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="stpr-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def embedded(page: Path, key: str) -> bytes:
    text = page.read_text(encoding="utf-8")
    m = re.search(rf'<script type="text/plain" id="stpr-media-{key}">(.*?)</script>', text, re.S)
    return base64.b64decode(m.group(1))


def decode(path: Path) -> list[np.ndarray]:
    with open_input(path) as r:
        return [f.rgb for f in r]


# ------------------------------------------------------------------------------------ files and data


def test_self_contained_page(clips, tmp_path, capsys):
    a, b = clips
    page = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "-o", str(page)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # offline: nothing to fetch
    data = page_data(page)
    assert data["embedded"] is True
    for side, name, label in ((data["a"], "dark.mp4", "input"), (data["b"], "bright.mp4", "output")):
        assert (side["name"], side["label"], side["kind"]) == (name, label, "video")
        assert (side["width"], side["height"], side["fps"], side["frames"]) == (W, H, FPS, N)
        assert (side["proxyWidth"], side["proxyHeight"], side["proxy"]) == (W, H, False)
    # the curves are stpr's mean luma of every source frame
    src = decode(a)
    assert np.allclose(data["a"]["luma"], frame_brightness(src), atol=0.01)
    assert data["b"]["luma"][0] > data["a"]["luma"][0] + 50
    # the embedded copies are H.264 MP4s with every frame, in order
    (tmp_path / "a.mp4").write_bytes(embedded(page, "a"))
    with open_input(tmp_path / "a.mp4") as r:
        assert r.info.fps == FPS
        frames = [f.rgb for f in r]
    assert len(frames) == N
    assert [index_of(f[: H // 2].mean()) for f in frames] == list(range(N))
    assert not list(tmp_path.glob(".*partial*"))


def test_folder_output_and_default_name(clips, tmp_path):
    a, b = clips
    out = tmp_path / "viewer"
    assert main(["compare", str(a), str(b), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "input.mp4", "output.mp4"]
    data = page_data(out / "index.html")
    assert (data["embedded"], data["a"]["src"], data["b"]["src"]) == (False, "input.mp4", "output.mp4")
    assert "stpr-media-a" not in (out / "index.html").read_text()
    assert len(decode(out / "output.mp4")) == N
    # default: OUTPUT_compare.html beside OUTPUT
    b2 = tmp_path / "clip_stpr.mp4"
    shutil.copy(b, b2)
    assert main(["compare", str(a), str(b2), "--quiet"]) == 0
    assert (tmp_path / "clip_stpr_compare.html").is_file()


def test_large_input_gets_a_proxy(tmp_path, capsys):
    a, b = tmp_path / "wide.mp4", tmp_path / "wide_out.mp4"
    write_test_video(a, clip(30, n=3, h=60, w=200), fps=FPS)
    write_test_video(b, clip(150, n=3, h=60, w=200), fps=FPS)
    page = tmp_path / "p.html"
    assert main(["compare", str(a), str(b), "-o", str(page), "--max-width", "64"]) == 0
    assert "proxy" in capsys.readouterr().out
    data = page_data(page)
    assert (data["a"]["width"], data["a"]["height"]) == (200, 60)
    assert (data["a"]["proxyWidth"], data["a"]["proxyHeight"], data["a"]["proxy"]) == (64, 18, True)
    (tmp_path / "x.mp4").write_bytes(embedded(page, "b"))
    assert decode(tmp_path / "x.mp4")[0].shape == (18, 64, 3)
    assert "proxy" in page.read_text()  # the page says so (compare.js writes the note from these fields)


def test_rotated_video_is_shown_upright(tmp_path):
    frames = clip(30, n=3)
    for f in frames:
        f[:, :8] = 255  # a white left edge: after a quarter turn counter-clockwise it is the bottom edge
    write_test_video(tmp_path / "r.mp4", frames, fps=FPS, rotation=90)
    page = tmp_path / "r.html"
    assert main(["compare", str(tmp_path / "r.mp4"), str(tmp_path / "r.mp4"), "-o", str(page), "--quiet"]) == 0
    data = page_data(page)
    assert (data["a"]["width"], data["a"]["height"]) == (H, W)
    (tmp_path / "a.mp4").write_bytes(embedded(page, "a"))
    with open_input(tmp_path / "a.mp4") as r:
        assert r.info.rotation == 0
        first = next(iter(r)).rgb
    assert first.shape == (W, H, 3) and first[-4:].mean() > 200 and first[:4].mean() < 200


def test_existing_output_needs_overwrite(clips, tmp_path, capsys):
    a, b = clips
    page = tmp_path / "p.html"
    page.write_text("keep me")
    assert main(["compare", str(a), str(b), "-o", str(page)]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists (use --overwrite)" in err
    assert page.read_text() == "keep me"
    assert main(["compare", str(a), str(b), "-o", str(page), "--overwrite", "--quiet"]) == 0
    assert page_data(page)["a"]["frames"] == N
    # a folder: an empty one is fine; a previous compare folder needs --overwrite
    folder = tmp_path / "f"
    folder.mkdir()
    assert main(["compare", str(a), str(b), "-o", str(folder), "--quiet"]) == 0
    assert main(["compare", str(a), str(b), "-o", str(folder), "--quiet"]) == 5
    assert main(["compare", str(a), str(b), "-o", str(folder), "--quiet", "--overwrite"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "input.mp4", "output.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "p.html"]


def test_overwrite_never_takes_a_users_folder(clips, tmp_path, capsys):
    """--overwrite replaces a previous compare folder's own files, never a folder with anything
    else in it (e.g. the inputs: ``stpr compare clips/a.mp4 clips/b.mp4 -o clips --overwrite``)."""
    src = tmp_path / "clips"
    src.mkdir()
    a, b = shutil.copy(clips[0], src / "a.mp4"), shutil.copy(clips[1], src / "b.mp4")
    (src / "notes.txt").write_text("mine")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my own page")
    (mine / "input.mp4").write_text("my own video")
    others = tmp_path / "others"
    others.mkdir()
    (others / "index.html").write_text('<script id="stpr-data">')
    (others / "notes.txt").write_text("mine")
    mypage = tmp_path / "mypage.html"
    mypage.write_text("my page")
    frames = tmp_path / "frames"
    write_rgb(frames / "0001.png", clip(30, n=1)[0])

    def snapshot() -> dict:
        return {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    before = snapshot()
    cases = [(b, src, "holds the input"), (b, mine, "holds other files"), (b, others, "holds other files"),
             (mypage, mypage, "is the input"), (frames, frames, "is the input"), (frames, tmp_path, "holds the input")]
    for second, target, message in cases:
        for extra in ([], ["--overwrite"]):
            capsys.readouterr()
            assert main(["compare", str(a), str(second), "-o", str(target), *extra]) == 5, (target, extra)
            err = capsys.readouterr().err
            assert err.startswith("stpr: error: ") and err.count("\n") == 1 and message in err, err
    assert snapshot() == before and not list(tmp_path.rglob(".*"))
    # a compare folder's own files are replaced, stale ones (stills before, videos now) dropped
    s1, s2 = tmp_path / "s1.png", tmp_path / "s2.png"
    write_rgb(s1, clip(30, n=1)[0])
    write_rgb(s2, clip(150, n=1)[0])
    viewer = tmp_path / "viewer"
    assert main(["compare", str(s1), str(s2), "-o", str(viewer), "--quiet"]) == 0
    assert sorted(p.name for p in viewer.iterdir()) == ["index.html", "input.png", "output.png"]
    assert main(["compare", str(a), str(b), "-o", str(viewer), "--quiet", "--overwrite"]) == 0
    assert sorted(p.name for p in viewer.iterdir()) == ["index.html", "input.mp4", "output.mp4"]
    assert page_data(viewer / "index.html")["a"]["frames"] == N
    # ... but not when one of them is an input
    capsys.readouterr()
    assert main(["compare", str(viewer / "input.mp4"), str(b), "-o", str(viewer), "--overwrite"]) == 5
    assert "holds the input" in capsys.readouterr().err
    assert len(decode(viewer / "input.mp4")) == N


def test_temporaries_are_per_run_and_a_finished_page_is_kept(clips, tmp_path, monkeypatch, capsys):
    """Each run writes under its own temporary (``.NAME.partial-PID-HOST-TOKEN``), removes those
    of dead runs, and never replaces a page another run finished meanwhile (without --overwrite)."""
    import stpr.compare as cmp
    from stpr.io.writing import _host_tag

    a, b = clips
    host = _host_tag()
    dead = tmp_path / f".p.partial-999999999-{host}-00.html"  # a killed run's leftovers
    old = tmp_path / ".p.partial.html"  # the fixed name of earlier versions
    live = tmp_path / f".p.partial-{os.getpid()}-{host}-ab.html"  # a run still going
    for t in (dead, old, live):
        t.write_text("partial")
    page = tmp_path / "p.html"
    render = cmp.render_page
    seen: list[str] = []

    def other_run_finishes(*args, **kwargs):
        seen.extend(p.name for p in tmp_path.glob(".*partial*"))
        target = page if kwargs["embed"] else tmp_path / "viewer"
        if kwargs["embed"]:
            page.write_text("the other run's page")
        else:
            target.mkdir()
            (target / "index.html").write_text(f'<script {cmp._PAGE_MARK}>the other run')
        return render(*args, **kwargs)

    monkeypatch.setattr(cmp, "render_page", other_run_finishes)
    assert main(["compare", str(a), str(b), "-o", str(page)]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another run" in err
    assert page.read_text() == "the other run's page"
    assert not dead.exists() and not old.exists() and live.read_text() == "partial"
    assert sorted(p.name for p in tmp_path.glob(".*")) == [live.name]
    # a folder: our temporary folder is ours alone; the other run's page is left as it is
    seen.clear()
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "viewer")]) == 5
    assert capsys.readouterr().err.count("\n") == 1
    assert len(seen) == 2 and live.name in seen
    (ours,) = [n for n in seen if n != live.name]
    assert re.fullmatch(rf"\.viewer\.partial-{os.getpid()}-{host}-[0-9a-f]+", ours), ours
    assert [p.name for p in (tmp_path / "viewer").iterdir()] == ["index.html"]
    assert "the other run" in (tmp_path / "viewer" / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.glob(".*")) == [live.name]
    # with --overwrite the newer run's page wins
    monkeypatch.setattr(cmp, "render_page", render)
    assert main(["compare", str(a), str(b), "-o", str(page), "--overwrite", "--quiet"]) == 0
    assert page_data(page)["a"]["frames"] == N


def test_output_dot_is_the_current_folder(clips, tmp_path, monkeypatch, capsys):
    a, b = clips
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["compare", str(a), str(b), "-o", ".", "--quiet"]) == 0
    assert sorted(p.name for p in here.iterdir()) == ["index.html", "input.mp4", "output.mp4"]
    assert main(["compare", str(a), str(b), "-o", ".", "--quiet", "--overwrite"]) == 0
    assert page_data(here / "index.html")["b"]["frames"] == N
    assert not list(tmp_path.rglob(".*"))
    monkeypatch.chdir(a.parent)  # the inputs' own folder: refused in one line, not an internal error
    for out in (".", "../" + a.parent.name):
        capsys.readouterr()
        assert main(["compare", a.name, b.name, "-o", out, "--overwrite"]) == 5
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds the input" in err, err


def test_bad_input_is_one_line_and_nonzero(clips, tmp_path, capsys):
    a, b = clips
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    img = tmp_path / "still.png"
    write_rgb(img, clip(30, n=1)[0])
    cases = [
        (["compare", str(tmp_path / "nope.mp4"), str(b)], 3),
        (["compare", str(junk), str(b), "-o", str(tmp_path / "j.html")], 3),
        (["compare", str(a), str(b), "-o", str(tmp_path / "x.mp4")], 2),
        (["compare", str(img), str(b), "-o", str(tmp_path / "i.html")], 2),
        (["compare", str(a), str(b), "-o", str(tmp_path / "nodir" / "p.html")], 5),
        (["compare", str(a), str(b), "-o", str(tmp_path / "m.html"), "--max-width", "0"], 2),
    ]
    for argv, code in cases:
        capsys.readouterr()
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("stpr: error: ") and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob(".*"))


def test_stills_and_frame_folders(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    write_rgb(a, clip(30, n=1, h=49, w=65)[0])
    write_rgb(b, clip(150, n=1, h=49, w=65)[0])
    page = tmp_path / "s.html"
    assert main(["compare", str(a), str(b), "-o", str(page), "--quiet"]) == 0
    data = page_data(page)
    assert data["a"]["kind"] == data["b"]["kind"] == "image"
    assert (data["a"]["proxyWidth"], data["a"]["proxyHeight"], data["a"]["mime"]) == (65, 49, "image/png")
    png = cv2.imdecode(np.frombuffer(embedded(page, "b"), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (49, 65, 3) and abs(int(png[40, 30, 0]) - 150) <= 3
    # a folder of frames plays as a video at 25 frames/s, beside a video
    frames = tmp_path / "frames"
    for i, f in enumerate(clip(150, n=5)):
        write_rgb(frames / f"f{i + 1}.png", f)
    write_test_video(tmp_path / "v.mp4", clip(30, n=5), fps=25)
    page = tmp_path / "fv.html"
    assert main(["compare", str(tmp_path / "v.mp4"), str(frames), "-o", str(page), "--quiet"]) == 0
    data = page_data(page)
    b_side = data["b"]
    assert (b_side["kind"], b_side["sourceKind"], b_side["fps"], b_side["frames"]) == ("video", "folder", 25, 5)


def test_enhance_compare_flag(clips, weights, tmp_path):
    a, _ = clips
    dst = tmp_path / "out.mp4"
    assert main(["enhance", str(a), "-o", str(dst), "--model", str(weights), "--quiet", "--compare",
                 "--frames", "1"]) == 0
    data = page_data(tmp_path / "out_compare.html")
    assert (data["a"]["name"], data["b"]["name"], data["b"]["frames"]) == ("dark.mp4", "out.mp4", N)
    # an existing page stops the run before any enhancing
    dst.unlink()
    assert main(["enhance", str(a), "-o", str(dst), "--model", str(weights), "--quiet", "--compare"]) == 5
    assert not dst.exists()


def test_eval_report_links_compare_pages(tmp_path):
    from stpr.report import run_eval

    root = tmp_path / "clips"
    for k in range(2):
        for i, f in enumerate(clip(20 + 10 * k, n=3)):
            write_rgb(root / f"c{k}" / f"{i:02d}.png", f)
    out = tmp_path / "rep"
    data = run_eval(clips=str(root), methods="gamma-clahe", out=str(out), log=lambda s: None)
    for k in range(2):
        link = data["images"]["sequences"][f"c{k}"]["compare"]
        assert link == f"compare/c{k}.html"
        pd = page_data(out / link)
        assert (pd["a"]["label"], pd["b"]["label"], pd["a"]["frames"]) == ("input", "gamma-clahe", 3)
        assert f"]({link})" in (out / "results.md").read_text()


# ------------------------------------------------------------------------------------ in the browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, exe: str, width: int = 1000, height: int = 700):
        import websocket

        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="stpr-chromium-")
        args = [exe, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "--hide-scrollbars", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = self._devtools_url()
            port = url.split("//", 1)[1].split("/", 1)[0]
            with urllib.request.urlopen(f"http://{port}/json/list", timeout=10) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self.next_id = 0
        self.errors: list[str] = []  # uncaught exceptions in the page
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("chromium exited: " + " ".join(lines)[-500:])
            lines.append(line.strip())
            if "DevTools listening on" in line:
                return line.split("DevTools listening on", 1)[1].strip()
        raise RuntimeError("chromium did not start its DevTools server")

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.exceptionThrown":
                d = msg["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text", "?"))

    def js(self, expr: str):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def state(self) -> dict:
        return self.js("JSON.parse(JSON.stringify(stprCompare.state))")

    def open(self, page: Path) -> dict:
        self.errors.clear()
        self.send("Page.navigate", url=page.resolve().as_uri())
        return self.wait(lambda s: s["ready"] or s["error"], "the page to load")

    def wait(self, cond, what: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        s = None
        while time.monotonic() < deadline:
            try:
                s = self.state()
            except RuntimeError:  # page still loading
                s = None
            if s is not None and cond(s):
                return s
            time.sleep(0.03)
        raise AssertionError(f"timed out waiting for {what}; state {s}; page errors {self.errors}")

    def settled(self, frame: int | None = None) -> dict:
        """Wait until both videos present the clock's frame after a seek."""
        return self.wait(lambda s: s["paused"] and not s["seeking"] and s["frameIndexA"] == s["frame"]
                         == s["frameIndexB"] and (frame is None or s["frame"] == frame), f"frame {frame}")

    def key(self, key: str, code: str, vk: int, shift: bool = False):
        text = key if len(key) == 1 else ""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=vk,
                      text=text if kind == "keyDown" else "", modifiers=8 if shift else 0)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 5):
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", buttons=1, clickCount=1)
        for k in range(1, steps + 1):
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + (x1 - x0) * k / steps,
                      y=y0 + (y1 - y0) * k / steps, button="left", buttons=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", buttons=0, clickCount=1)

    def screenshot(self) -> np.ndarray:
        """The viewport as (H, W) grey levels."""
        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float64)

    def rects(self) -> list[dict]:
        """Where each side's picture is on the screen (content boxes, after zoom)."""
        return self.js("['contentA','contentB'].map(id => { const r = document.getElementById(id)"
                       ".getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; })")

    def canvas_greys(self) -> list[float]:
        """Top-half grey of the frame each <video> holds, read back through a canvas in the page."""
        return self.js("""Array.from(document.querySelectorAll('video')).map(v => {
            const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
            const g = c.getContext('2d'); g.drawImage(v, 0, 0);
            const d = g.getImageData(8, 4, c.width - 16, c.height / 2 - 8).data;
            let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i + 1]; return s / (d.length / 4); })""")

    def close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client (stpr[test]) drives Chromium")
    b = Chromium(exe)
    yield b
    b.close()


@pytest.fixture(scope="module")
def page(clips, tmp_path_factory) -> Path:
    a, b = clips
    p = tmp_path_factory.mktemp("page") / "compare.html"
    assert main(["compare", str(a), str(b), "-o", str(p), "--quiet"]) == 0
    return p


def shown_indices(browser: Chromium) -> list[int]:
    """Frame index each side shows, from a screenshot: the middle of the top half of each picture
    (side-by-side view: each picture whole)."""
    img = browser.screenshot()
    out = []
    for r in browser.rects():
        x0, x1 = int(r["x"] + r["w"] * 0.2), int(r["x"] + r["w"] * 0.8)
        y0, y1 = int(r["y"] + r["h"] * 0.1), int(r["y"] + r["h"] * 0.4)
        out.append(index_of(img[y0:y1, x0:x1].mean()))
    return out


def wait_shown(browser: Chromium, expected: list[int], timeout: float = 3.0) -> list[int]:
    """``shown_indices`` once it equals ``expected`` (or the last reading after ``timeout``): the
    page's state can say a frame is presented a paint before the screenshot shows it."""
    deadline = time.monotonic() + timeout
    while True:
        got = shown_indices(browser)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def wipe_x(browser: Chromium) -> float:
    """Screen x where the bottom half changes from A's 30 to B's 150 (the handle is masked out)."""
    img = browser.screenshot()
    r = browser.rects()[0]
    y = int(r["y"] + r["h"] * 0.8)
    x0, x1 = int(r["x"]) + 2, int(r["x"] + r["w"]) - 2
    bright = img[y - 3:y + 3, x0:x1].mean(axis=0) > 90
    run = np.convolve(bright, np.ones(12), "valid") == 12  # B's side, not the 2-pixel handle line
    return x0 + int(np.argmax(run))


def test_browser_loads_plays_and_pauses_in_sync(browser, page):
    t0 = time.monotonic()
    s = browser.open(page)
    assert s["error"] is None and s["ready"] and (s["frames"], s["fps"], s["view"]) == (N, FPS, "wipe")
    assert browser.js("document.getElementById('nameA').textContent") == "dark.mp4"
    assert "64×48" in browser.js("document.getElementById('metaB').textContent")
    s = browser.settled(0)
    browser.key(" ", "Space", 32)  # play
    browser.wait(lambda s: not s["paused"] and s["frame"] >= 3, "playback to reach frame 3")
    browser.key(" ", "Space", 32)  # pause
    s = browser.settled()
    assert 3 <= s["frame"] < N and s["frameIndexA"] == s["frameIndexB"] == s["frame"]
    browser.key("2", "Digit2", 50)  # side by side: both pictures whole on screen
    browser.wait(lambda s: s["view"] == "side", "side view")
    assert wait_shown(browser, [s["frame"], s["frame"]]) == [s["frame"], s["frame"]]
    assert [index_of(g) for g in browser.canvas_greys()] == [s["frame"], s["frame"]]
    assert time.monotonic() - t0 < 15


def test_browser_seek_and_frame_steps(browser, page):
    browser.open(page)
    browser.key("2", "Digit2", 50)
    # seek with the timeline (a real click on the range input)
    box = browser.js("(() => { const r = document.getElementById('seek').getBoundingClientRect();"
                     " return [r.x, r.y, r.width, r.height]; })()")
    x = box[0] + box[2] * (12 / (N - 1))
    browser.drag(x, box[1] + box[3] / 2, x, box[1] + box[3] / 2, steps=1)
    s = browser.wait(lambda s: abs(s["frame"] - 12) <= 1, "a seek near frame 12")
    k = s["frame"]
    browser.settled(k)
    assert wait_shown(browser, [k, k]) == [k, k]
    for _ in range(3):
        browser.key(".", "Period", 190)
    s = browser.settled(k + 3)
    assert wait_shown(browser, [k + 3, k + 3]) == [k + 3, k + 3]
    assert [index_of(g) for g in browser.canvas_greys()] == [k + 3, k + 3]
    browser.key(",", "Comma", 188)
    browser.settled(k + 2)
    assert wait_shown(browser, [k + 2, k + 2]) == [k + 2, k + 2]
    browser.js("stprCompare.seekFrame(0)")
    browser.key(",", "Comma", 188)  # clamps at the first frame
    browser.settled(0)
    browser.js(f"stprCompare.seekFrame({N - 1})")
    browser.settled(N - 1)
    assert wait_shown(browser, [N - 1, N - 1]) == [N - 1, N - 1]


def test_browser_wipe_moves_by_drag_and_keys(browser, page):
    s = browser.open(page)
    browser.settled(0)
    stage = browser.js("(() => { const r = document.getElementById('stage').getBoundingClientRect();"
                       " return [r.x, r.y, r.width, r.height]; })()")
    assert s["wipe"] == 0.5
    assert abs(wipe_x(browser) - (stage[0] + stage[2] / 2)) <= 3
    # drag the handle to a quarter of the width, then back right with the keyboard
    y = stage[1] + stage[3] / 2
    browser.drag(stage[0] + stage[2] / 2, y, stage[0] + stage[2] * 0.35, y)
    s = browser.wait(lambda s: abs(s["wipe"] - 0.35) < 0.01, "the wipe to follow the drag")
    assert abs(wipe_x(browser) - (stage[0] + stage[2] * 0.35)) <= 3
    for _ in range(5):
        browser.key("ArrowRight", "ArrowRight", 39)
    s = browser.wait(lambda s: abs(s["wipe"] - 0.45) < 1e-6, "the wipe to move by keys")
    assert abs(wipe_x(browser) - (stage[0] + stage[2] * 0.45)) <= 3
    # the whole top half is one grey across the wipe line: both sides show the same frame
    img = browser.screenshot()
    r = browser.rects()[0]
    top = img[int(r["y"] + r["h"] * 0.1):int(r["y"] + r["h"] * 0.4), int(r["x"]) + 4:int(r["x"] + r["w"]) - 4]
    top = np.delete(top, np.s_[int(stage[2] * 0.45 - r["x"]) - 20:int(stage[2] * 0.45 - r["x"]) + 20], axis=1)
    assert top.max() - top.min() <= 6


def test_browser_toggle_and_shared_zoom(browser, page):
    browser.open(page)
    browser.settled(0)
    browser.key("3", "Digit3", 51)
    s = browser.wait(lambda s: s["view"] == "toggle", "toggle view")
    r = browser.rects()[0]
    centre = (int(r["y"] + r["h"] * 0.8), int(r["x"] + r["w"] / 2))
    assert s["shown"] == "B" and abs(browser.screenshot()[centre] - 150) < 8
    browser.key("t", "KeyT", 84)
    s = browser.wait(lambda s: s["shown"] == "A", "the flip")
    assert abs(browser.screenshot()[centre] - 30) < 8
    # zoom with the wheel in the side view: both sides show the same region
    browser.key("2", "Digit2", 50)
    rb = browser.rects()[1]
    browser.send("Input.dispatchMouseEvent", type="mouseWheel", x=rb["x"] + rb["w"] * 0.75,
                 y=rb["y"] + rb["h"] * 0.25, deltaX=0, deltaY=-400)
    s = browser.wait(lambda s: s["zoom"] > 2, "the wheel zoom")
    ra, rb = browser.rects()
    assert abs(ra["w"] - rb["w"]) < 0.5 and abs(ra["h"] - rb["h"]) < 0.5
    panes = browser.js("['paneA','paneB'].map(id => document.getElementById(id).getBoundingClientRect().x)")
    assert abs((ra["x"] - panes[0]) - (rb["x"] - panes[1])) < 0.5 and abs(ra["y"] - rb["y"]) < 0.5
    assert s["region"]["x0"] > 0.3 and s["region"]["y1"] < 0.7  # zoomed towards the top right
    assert browser.js("document.getElementById('contentA').classList.contains('pixelated')")
    browser.key("0", "Digit0", 48)
    browser.wait(lambda s: s["zoom"] == 1, "zoom reset")


def test_browser_stills_and_folder_page(browser, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_rgb(a, clip(30, n=1)[0])
    write_rgb(b, clip(150, n=1)[0])
    page = tmp_path / "still.html"
    assert main(["compare", str(a), str(b), "-o", str(page), "--quiet"]) == 0
    s = browser.open(page)
    assert s["error"] is None and s["still"] and s["view"] == "wipe"
    stage = browser.js("(() => { const r = document.getElementById('stage').getBoundingClientRect();"
                       " return [r.x, r.y, r.width, r.height]; })()")
    assert abs(wipe_x(browser) - (stage[0] + stage[2] / 2)) <= 3
    browser.key("[", "BracketLeft", 219, shift=False)
    browser.wait(lambda s: abs(s["wipe"] - 0.48) < 1e-6, "the wipe key")
    # a folder page plays its videos from the files beside it
    clips_dir = tmp_path / "v"
    clips_dir.mkdir()
    write_test_video(clips_dir / "a.mp4", clip(30, n=4), fps=FPS)
    write_test_video(clips_dir / "b.mp4", clip(150, n=4), fps=FPS)
    assert main(["compare", str(clips_dir / "a.mp4"), str(clips_dir / "b.mp4"), "-o", str(tmp_path / "dir"),
                 "--quiet"]) == 0
    s = browser.open(tmp_path / "dir" / "index.html")
    assert s["error"] is None and s["frames"] == 4 and not s["proxy"]
    assert browser.js("document.getElementById('notes').textContent") == ""
    browser.key(".", "Period", 190)
    browser.settled(1)
    browser.key("2", "Digit2", 50)
    assert wait_shown(browser, [1, 1]) == [1, 1]
    # a large input plays as a proxy, and the page says so
    write_test_video(clips_dir / "wide.mp4", clip(30, n=3, h=60, w=200), fps=FPS)
    assert main(["compare", str(clips_dir / "wide.mp4"), str(clips_dir / "b.mp4"), "-o", str(tmp_path / "p.html"),
                 "--max-width", "64", "--quiet"]) == 0
    s = browser.open(tmp_path / "p.html")
    assert s["error"] is None and s["proxy"]
    note = browser.js("document.getElementById('notes').textContent")
    assert "A is 200×60; the page plays a 64×18 proxy" in note and "differ in shape" in note
