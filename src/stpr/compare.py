"""``stpr compare``: a before/after viewer that opens in any browser, offline.

``compare(INPUT, OUTPUT, out)`` writes either one self-contained HTML page (``out`` ends in
``.html``: the videos are embedded in it) or a folder (``out`` has no extension) holding
``index.html`` with ``input.mp4`` and ``output.mp4`` beside it. Both videos are re-encoded by the
project's own writer (:func:`stpr.io.open_output`, H.264 in MP4, constant frame rate, upright),
so any browser plays them and frame *k* of each starts at exactly ``k / fps``. Frames wider than
``max_width`` (1280 by default) are scaled down to a *proxy* and the page says so. Single images
are shown as stills (PNG) with the same wipe and zoom; a folder of frames plays as a video at
stpr's folder frame rate (25/s).

The page (``assets/compare.{html,js,css}``, inlined) has three views (wipe, side by side,
toggle), synced play/pause/seek, frame stepping, zoom and pan shared by both sides, and the mean
luma of every frame of both (``stpr.metrics.video.frame_brightness``) as curves under the
timeline. It exposes its state as ``window.stprCompare.state`` for tests.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from stpr.errors import InputError, OutputError, UsageError

PROXY_MAX_WIDTH = 1280
FOLDER_FPS = Fraction(25)
DEFAULT_CRF = 18
EMBED_WARN_BYTES = 200 * 1024 * 1024
_ASSETS = ("compare.html", "compare.css", "compare.js")


@dataclass
class Side:
    """One side of the comparison, ready for the page."""

    label: str  # "input" / "output" (or a method name)
    name: str  # file name shown in the page
    kind: str  # "video" | "image"
    source_kind: str  # what open_input made of it: "video" | "folder" | "image"
    width: int  # display size of the original (after rotation)
    height: int
    fps: float | None
    fps_text: str | None  # e.g. "30000/1001"
    num_frames: int
    proxy_width: int  # size of the media in the page
    proxy_height: int
    luma: list[float] = field(default_factory=list)
    media: bytes = b""  # MP4 or PNG
    mime: str = "video/mp4"

    @property
    def scaled(self) -> bool:
        """Shown smaller than the original (not counting the odd pixel H.264 drops)."""
        return self.proxy_width < self.width - 1 or self.proxy_height < self.height - 1

    def to_json(self, src: str | None) -> dict:
        return {
            "label": self.label, "name": self.name, "kind": self.kind, "sourceKind": self.source_kind,
            "width": self.width, "height": self.height, "fps": self.fps, "fpsText": self.fps_text,
            "frames": self.num_frames, "proxyWidth": self.proxy_width, "proxyHeight": self.proxy_height,
            "proxy": self.scaled, "luma": [round(v, 2) for v in self.luma], "mime": self.mime, "src": src,
        }


def proxy_size(width: int, height: int, max_width: int = PROXY_MAX_WIDTH) -> tuple[int, int]:
    """Size of the picture shown in the page: at most ``max_width`` wide, even sides for H.264."""
    if width > max_width:
        height = max(2, round(height * max_width / width))
        width = max_width
    return max(2, width - width % 2), max(2, height - height % 2)


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale (INTER_AREA) or, for the odd pixel H.264 cannot hold, crop ``rgb`` to ``size`` (w, h)."""
    h, w = rgb.shape[:2]
    if (w, h) == size:
        return rgb
    if w - size[0] <= 1 and h - size[1] <= 1:
        return np.ascontiguousarray(rgb[: size[1], : size[0]])
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    k = (rotation // 90) % 4  # MediaInfo.rotation is counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB
        raise OutputError("cannot encode PNG")
    return buf.tobytes()


def _encode_frames(frames: Iterable[np.ndarray], fps: Fraction, size: tuple[int, int], mp4: Path, *,
                   crf: int, source: Path, luma: list[float]) -> int:
    """Encode upright RGB ``frames`` (any size; fitted to ``size``) as H.264 MP4 at ``fps``, with
    the project's writer; appends each frame's mean luma (full resolution) to ``luma``."""
    from stpr.io import Frame, MediaInfo, open_output
    from stpr.metrics.video import frame_brightness

    info = MediaInfo(kind="video", width=size[0], height=size[1], fps=fps, num_frames=None, rotation=0,
                     time_base=1 / fps, colorspace="bt709" if size[1] >= 720 else "bt601", color_range="tv",
                     has_audio=False, path=source)
    import warnings

    n = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="frame size .* is odd")  # a proxy's padding is no news
        with open_output(mp4, info, codec="libx264", crf=crf, preset="medium", overwrite=True) as writer:
            for rgb in frames:
                luma.append(float(frame_brightness([rgb])[0]))
                writer.write(Frame(rgb=_fit(rgb, size), pts=None, time_base=None, index=n))
                n += 1
    return n


def prepare_path(path: str | os.PathLike[str], label: str, mp4: Path, *, max_width: int = PROXY_MAX_WIDTH,
                 crf: int = DEFAULT_CRF) -> Side:
    """Read a video, frame folder or image with :func:`stpr.io.open_input`; a video or folder is
    encoded to ``mp4`` (its bytes are also kept in ``Side.media``), an image becomes a PNG."""
    from stpr.io import open_input

    path = Path(path)
    with open_input(path) as reader:
        info = reader.info
        rot = info.rotation
        width, height = (info.height, info.width) if rot in (90, 270) else (info.width, info.height)
        size = proxy_size(width, height, max_width)
        name = path.name or str(path)
        if info.kind == "image":
            return _still_side(_upright(next(iter(reader)).rgb, rot), label, name, max_width)
        fps = Fraction(info.fps) if info.fps else FOLDER_FPS  # open_input gives folders 25/s
        luma: list[float] = []
        n = _encode_frames((_upright(f.rgb, rot) for f in reader), fps, size, mp4, crf=crf, source=path, luma=luma)
    if n == 0:
        raise InputError(f"{path}: no video frames")
    return Side(label, name, "video", info.kind, width, height, float(fps), _fps_text(fps), n, size[0], size[1],
                luma, mp4.read_bytes(), "video/mp4")


def _still(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """A still keeps its size (PNG has no 4:2:0) unless wider than ``max_width``."""
    h, w = rgb.shape[:2]
    if w <= max_width:
        return rgb
    return cv2.resize(rgb, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)


def _still_side(rgb: np.ndarray, label: str, name: str, max_width: int) -> Side:
    from stpr.metrics.video import frame_brightness

    shown = _still(rgb, max_width)
    return Side(label, name, "image", "image", rgb.shape[1], rgb.shape[0], None, None, 1, shown.shape[1],
                shown.shape[0], [float(frame_brightness([rgb])[0])], _png(shown), "image/png")


def prepare_frames(frames: Sequence[np.ndarray], label: str, name: str, mp4: Path, *, fps: float = 25,
                   max_width: int = PROXY_MAX_WIDTH, crf: int = DEFAULT_CRF) -> Side:
    """Like :func:`prepare_path` for frames in memory (``stpr eval``): one frame is a still."""
    if not len(frames):
        raise InputError(f"{name}: no frames")
    h, w = np.asarray(frames[0]).shape[:2]
    size = proxy_size(w, h, max_width)
    if len(frames) == 1:
        return _still_side(np.asarray(frames[0], dtype=np.uint8), label, name, max_width)
    f = Fraction(fps).limit_denominator(1001000)
    luma: list[float] = []
    n = _encode_frames((np.asarray(x, dtype=np.uint8) for x in frames), f, size, mp4, crf=crf,
                       source=Path(name), luma=luma)
    return Side(label, name, "video", "frames", w, h, float(f), _fps_text(f), n, size[0], size[1], luma,
                mp4.read_bytes(), "video/mp4")


def _asset(name: str) -> str:
    return resources.files("stpr").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def render_page(a: Side, b: Side, *, embed: bool, title: str | None = None,
                srcs: tuple[str, str] = ("input.mp4", "output.mp4")) -> str:
    """The page's HTML. ``embed``: the media go into the page as base64; else they are
    referenced by the relative names ``srcs`` (images get a .png name instead)."""
    names = []
    for side, src in zip((a, b), srcs):
        names.append(None if embed else (Path(src).with_suffix(".png").name if side.kind == "image" else src))
    data = {"title": title or f"{a.name} vs {b.name}", "a": a.to_json(names[0]), "b": b.to_json(names[1]),
            "embedded": embed, "proxyMaxWidth": max(a.proxy_width, b.proxy_width)}
    media = ""
    if embed:
        media = "".join(f'<script type="text/plain" id="stpr-media-{k}">{base64.b64encode(s.media).decode()}</script>\n'
                        for k, s in (("a", a), ("b", b)))
    parts = {"TITLE": html.escape(data["title"]), "CSS": _asset("compare.css"), "JS": _asset("compare.js"),
             "DATA": _script_json(data), "MEDIA": media}
    # one pass, so nothing inserted (a file name, the script) is itself substituted
    return re.sub(r"/\*\{\{(CSS|JS)\}\}\*/|\{\{(TITLE|DATA|MEDIA)\}\}",
                  lambda m: parts[m.group(1) or m.group(2)], _asset("compare.html"))


def check_kinds(a: Side | str, b: Side | str, a_name: str, b_name: str) -> None:
    ka = a.kind if isinstance(a, Side) else a
    kb = b.kind if isinstance(b, Side) else b
    if (ka == "image") != (kb == "image"):
        still, moving = (a_name, b_name) if ka == "image" else (b_name, a_name)
        raise UsageError(f"cannot compare the still image {still} with the video/frames {moving}: "
                         "give two videos (or frame folders) or two images")


def default_compare_output(output: str | os.PathLike[str]) -> Path:
    """``clip_stpr.mp4`` -> ``clip_stpr_compare.html`` (beside it); ``frames/`` -> ``frames_compare.html``."""
    p = _named(Path(output))
    stem = p.name if p.is_dir() else p.stem
    return p.with_name(f"{stem}_compare.html")


# What a folder output holds: a previous compare folder (only these, with our index.html) may be
# replaced with --overwrite; a folder holding anything else is never touched.
_FOLDER_FILES = ("input.mp4", "input.png", "output.mp4", "output.png", "index.html")
_PAGE_MARK = 'id="stpr-data"'


def _named(path: Path) -> Path:
    """``path`` with a real last component (``.``, ``..``, ``dir/..`` resolved), so that sibling
    temporaries can be named beside it."""
    return path.resolve() if path.name in ("", ".", "..") else path


def _is_compare_page(page: Path) -> bool:
    try:
        with page.open(encoding="utf-8", errors="replace") as f:
            return _PAGE_MARK in f.read(4 * 2**20)
    except OSError:
        return False


def _foreign_files(folder: Path) -> list[str]:
    """Names in ``folder`` that ``stpr compare`` did not write there (empty for an empty folder or
    a previous compare folder)."""
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return []
    others = [n for n in names if n not in _FOLDER_FILES]
    if not others and "index.html" not in names:
        return names  # media files without our page: not ours to replace
    if not others and not _is_compare_page(folder / "index.html"):
        return ["index.html"]
    return others


def check_compare_target(out: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Fail early (OutputError) where ``out`` cannot be written or would be replaced silently.
    A folder output may only replace a previous compare folder (with ``overwrite``); a folder
    holding anything else, or one of the inputs, is refused whatever ``overwrite`` says."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix and suffix not in (".html", ".htm"):
        raise UsageError(f"-o {out}: use a .html name (one self-contained page) or a name without "
                         "extension (a folder with index.html and the two videos)")
    target = _named(out)
    if not target.name:
        raise UsageError(f"-o {out}: give the name of a page (.html) or of a folder to write the page into")
    from stpr.io.writing import check_output_path

    check_output_path(target, [Path(src) for src in inputs])  # not an input; a writable folder
    for src in map(Path, inputs):
        if not suffix:
            try:
                inside = target.resolve() in src.resolve().parents
            except OSError:
                inside = False
            if inside:
                raise OutputError(f"output folder {out} holds the input {src}; choose another name")
    if target.is_dir() and suffix:
        raise OutputError(f"output {out} is a folder")
    if target.is_dir() and not suffix:
        others = _foreign_files(target)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise OutputError(f"output folder {out} holds other files than a compare page ({shown}); "
                              "choose another name or an empty folder")
        if not overwrite and any(target.iterdir()):
            raise OutputError(f"output {out} already exists (use --overwrite)")
        return
    if os.path.lexists(target) and not overwrite:
        raise OutputError(f"output {out} already exists (use --overwrite)")


def _commit_folder(temp: Path, final: Path, names: Sequence[str], overwrite: bool) -> None:
    """Move the files ``names`` of the finished folder ``temp`` into ``final``. A missing
    ``final`` is renamed into place; an existing one (empty, or a previous compare folder with
    ``overwrite``) gets our files one by one, never replacing one that another run finished
    meanwhile without ``overwrite``, and nothing but compare's own files is removed."""
    from stpr.io.writing import _commit_file

    if os.path.lexists(final) and not final.is_dir():
        if not overwrite:
            raise OutputError(f"{final} appeared while this run was working (another run?); it was left as it "
                              "is and this run's result was dropped (use --overwrite to replace it)")
        final.unlink()  # a file of that name, replaced as asked (an input was refused earlier)
    if not os.path.lexists(final):
        try:
            os.rename(temp, final)
            return
        except OSError:
            if not final.is_dir():
                raise
    check_compare_target(final, [], overwrite)  # anything new in there since the first check?
    moved: list[Path] = []
    try:
        for name in names:  # the page last: a folder with index.html is complete
            _commit_file(temp / name, final / name, overwrite)
            moved.append(final / name)
    except BaseException:
        if not overwrite:  # take back what we put in, so the folder stays as the other run left it
            for p in moved:
                p.unlink(missing_ok=True)
        raise
    for old in _FOLDER_FILES:  # e.g. input.png of a previous page of stills
        if old not in names:
            (final / old).unlink(missing_ok=True)


def write_compare(a: Side, b: Side, out: str | os.PathLike[str], *, overwrite: bool = False,
                  title: str | None = None, work: Path | None = None, inputs: Sequence[Path] = ()) -> Path:
    """Write the page for two prepared sides to ``out`` (.html: self-contained; no extension: a
    folder). Written under a hidden temporary name unique to the run (as :mod:`stpr.io.writing`
    does) and moved into place when complete; without ``overwrite`` a page another run finished
    meanwhile is left alone (OutputError)."""
    import warnings

    from stpr.io.common import describe_os_error
    from stpr.io.writing import _commit_file, _partial_folder, _partial_path, _remove, _remove_stale_partials

    out = Path(out)
    check_kinds(a, b, a.name, b.name)
    check_compare_target(out, inputs, overwrite)
    target = _named(out)
    if out.suffix:
        total = len(a.media) + len(b.media)
        if total > EMBED_WARN_BYTES:
            warnings.warn(f"{out}: embedding {total / 2**20:.0f} MB of video makes a heavy page; a folder "
                          f"output (-o {out.with_suffix('')}) keeps the videos beside it", stacklevel=2)
        _remove_stale_partials(target)  # temporaries of killed runs
        temp = _partial_path(target)
        try:
            temp.write_text(render_page(a, b, embed=True, title=title), encoding="utf-8")
            _commit_file(temp, target, overwrite)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {describe_os_error(exc)}") from exc
        finally:
            _remove(temp)
        return out
    _remove_stale_partials(target, folder=True)
    temp = _partial_folder(target)
    try:
        temp.mkdir()
        names = []
        for side, name in ((a, "input.mp4"), (b, "output.mp4")):
            name = Path(name).with_suffix(".png").name if side.kind == "image" else name
            (temp / name).write_bytes(side.media)
            names.append(name)
        (temp / "index.html").write_text(render_page(a, b, embed=False, title=title), encoding="utf-8")
        _commit_folder(temp, target, [*names, "index.html"], overwrite)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {describe_os_error(exc)}") from exc
    finally:
        _remove(temp)
    return out


def compare(input: str | os.PathLike[str], output: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
            *, overwrite: bool = False, max_width: int = PROXY_MAX_WIDTH, crf: int = DEFAULT_CRF,
            title: str | None = None, log: Callable[[str], None] = lambda s: None) -> Path:
    """Write a before/after page for ``input`` and ``output`` (videos, frame folders or images).
    Returns the page's path (the folder's ``index.html`` for a folder output)."""
    if max_width < 16:
        raise UsageError(f"--max-width must be >= 16, got {max_width}")
    if not 0 <= crf <= 51:
        raise UsageError(f"--crf must be between 0 and 51, got {crf}")
    src_a, src_b = Path(input), Path(output)
    for p in (src_a, src_b):
        if not p.exists():
            raise InputError(f"input not found: {p}")
    dst = Path(out) if out is not None else default_compare_output(src_b)
    check_compare_target(dst, [src_a, src_b], overwrite)
    from stpr.io import IMAGE_EXTENSIONS

    def kind(p: Path) -> str:
        return "image" if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS else "video"

    check_kinds(kind(src_a), kind(src_b), str(src_a), str(src_b))
    with tempfile.TemporaryDirectory(prefix="stpr-compare-") as tmp:
        log(f"preparing {src_a} ...")
        a = prepare_path(src_a, "input", Path(tmp) / "a.mp4", max_width=max_width, crf=crf)
        log(f"preparing {src_b} ...")
        b = prepare_path(src_b, "output", Path(tmp) / "b.mp4", max_width=max_width, crf=crf)
        if a.name == b.name:  # e.g. two folders called frames/: show where they live
            a = dataclasses.replace(a, name=str(src_a))
            b = dataclasses.replace(b, name=str(src_b))
        write_compare(a, b, dst, overwrite=overwrite, title=title, inputs=(src_a, src_b))
    for s in (a, b):
        if s.scaled:
            log(f"note: {s.name} is {s.width}x{s.height}; the page shows a {s.proxy_width}x{s.proxy_height} proxy")
    return dst if dst.suffix else dst / "index.html"
