"""ONNX export of STPR and an onnxruntime engine that streams like the PyTorch model.

The network is exported as two graphs, mirroring the streaming split of :class:`~stpr.models.stpr_arch.STPR`:

- ``encode.onnx``: (x (1, 3, H, W), stats (1, 6)) -> the frame's state (norm_small, logb, feats and,
  with learned flow, the flow pyramid), computed once per frame;
- ``decode.onnx``: x, stats and state of all T frames of a window -> the enhanced centre frame
  (1, 3, H, W), clamped to [0, 1]. Inputs a model does not use (neighbour pixels without
  ``pixel_fusion``) are pruned from the graph.

H and W are dynamic (multiples of ``STPR.multiple``), so one export serves every frame and tile
size. :class:`OnnxSTPR` has the parts of the STPR interface the streaming :class:`~stpr.enhance.Enhancer`
uses (``cfg``, ``multiple``, ``pad``, ``encode_frame``, ``decode``), so tiling, streaming and I/O
are shared, and only the network runs in onnxruntime.

The export folder holds ``encode.onnx``, ``decode.onnx`` and ``stpr.json`` (the model config and
the source weights' SHA-256). DIS flow (OpenCV) cannot be part of a graph; export "learned" or
"zero" flow models.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from stpr.errors import ModelError, UsageError
from stpr.models.common import frame_stats
from stpr.models.stpr_arch import STPR, FrameState, STPRConfig

MANIFEST = "stpr.json"
OPSET = 18
# Layout of the graphs' inputs; 2: x and stats per frame (pixel fusion reads neighbours' pixels);
# 3: stats has 6 entries (linear-light mean luma added).
EXPORT_FORMAT = 3


def _state_names(model: STPR) -> list[str]:
    names = ["norm_small", "logb", "feats"]
    if model.cfg.flow_mode == "learned" and model.cfg.frames > 1:
        names += [f"flow_pyr{k}" for k in range(model.cfg.flow_levels)]
    return names


def _state_tensors(s: FrameState) -> list[torch.Tensor]:
    """A state's per-frame tensors in graph order (``_state_names``)."""
    return [s.norm_small, s.logb, s.feats, *(s.flow_pyr or [])]


def _state_from(parts, x: torch.Tensor, stats: torch.Tensor) -> FrameState:
    """Inverse of ``_state_tensors``."""
    return FrameState(x=x, stats=stats, norm_small=parts[0], logb=parts[1], feats=parts[2],
                      flow_pyr=list(parts[3:]) or None)


# Per-frame decode inputs: the frame itself and its statistics, then its state.
_FRAME_INPUTS = ["x", "stats"]


def _decode_names(model_cfg: STPRConfig, state_names: list[str]) -> list[str]:
    return [f"f{t}_{n}" for t in range(model_cfg.frames) for n in _FRAME_INPUTS + state_names]


class _EncodeGraph(nn.Module):
    def __init__(self, model: STPR):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, stats: torch.Tensor):
        return tuple(_state_tensors(self.model.encode_frame(x, stats)))


class _DecodeGraph(nn.Module):
    def __init__(self, model: STPR):
        super().__init__()
        self.model = model
        self.n_state = len(_state_names(model))

    def forward(self, *flat: torch.Tensor):
        k = len(_FRAME_INPUTS) + self.n_state
        parts = [flat[t * k:(t + 1) * k] for t in range(self.model.cfg.frames)]
        window = [_state_from(p[2:], p[0], p[1]) for p in parts]  # p[:2]: _FRAME_INPUTS (x, stats)
        out, _ = self.model.decode(window)
        return out


def export_onnx(model: STPR, out_dir: str | Path, weights: str | Path | None = None,
                sample_size: tuple[int, int] = (128, 192)) -> Path:
    """Export ``model`` (eval mode) to ``out_dir`` (created; existing export files are replaced).

    Args:
        model: STPR with flow_mode "learned" or "zero".
        out_dir: folder for encode.onnx, decode.onnx and stpr.json.
        weights: the weights file the model came from (its hash goes into the manifest).
        sample_size: (H, W) of the tracing input; any multiple of ``model.multiple`` works.

    Returns:
        the export folder.
    """
    if model.cfg.flow_mode == "dis":
        raise UsageError("DIS flow runs in OpenCV and cannot be exported to ONNX; "
                         "export with --flow learned or --flow zero")
    try:
        import onnx  # noqa: F401 - torch's exporter needs it
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'stpr[onnx]'") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"ONNX export target {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    m = model.multiple
    h, w = (math.ceil(s / m) * m for s in sample_size)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 0.2
    stats = frame_stats(x)
    names = _state_names(model)
    enc = _EncodeGraph(model)
    with torch.no_grad():
        state = enc(x, stats)
    dyn_img = {2: "height", 3: "width"}
    enc_axes = {"x": dyn_img}
    for n in names:
        enc_axes[n] = {2: f"{n}_h", 3: f"{n}_w"}
    tmp_enc, tmp_dec = out / ".encode.onnx.part", out / ".decode.onnx.part"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(enc, (x, stats), str(tmp_enc), input_names=["x", "stats"], output_names=names,
                          dynamic_axes=enc_axes, opset_version=OPSET, dynamo=False)
        dec = _DecodeGraph(model)
        flat_names = _decode_names(model.cfg, names)
        dec_axes = {"out": dyn_img}
        for t in range(model.cfg.frames):
            dec_axes[f"f{t}_x"] = dyn_img
            for n in names:
                dec_axes[f"f{t}_{n}"] = {2: f"{n}_h", 3: f"{n}_w"}
        # distinct graph inputs for every frame
        flat = [s.clone() for _ in range(model.cfg.frames) for s in (x, stats, *state)]
        torch.onnx.export(dec, tuple(flat), str(tmp_dec), input_names=flat_names,
                          output_names=["out"], dynamic_axes=dec_axes, opset_version=OPSET, dynamo=False)
    os.replace(tmp_enc, out / "encode.onnx")
    os.replace(tmp_dec, out / "decode.onnx")
    manifest = {"format": EXPORT_FORMAT, "stpr_config": model.cfg.to_dict(), "state_names": names, "opset": OPSET,
                "weights_sha256": _sha256(weights) if weights else None,
                "look": model.cfg.looks[model.look] if model.cfg.looks else None}  # baked into decode
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_onnx_export(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


class OnnxSTPR:
    """STPR run by onnxruntime, with the interface the streaming Enhancer uses.

    Args:
        folder: an export made by :func:`export_onnx`.
        threads: onnxruntime intra-op threads (None: onnxruntime's default, all cores).
    """

    def __init__(self, folder: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("onnxruntime is not installed: pip install 'stpr[onnx]'") from None
        folder = Path(folder)
        try:
            digest = hashlib.sha256()
            for name in (MANIFEST, "encode.onnx", "decode.onnx"):
                digest.update((folder / name).read_bytes())
            # What the engine computes, for resumable runs (the export folder may be temporary).
            self.fingerprint = "onnx:" + digest.hexdigest()
            manifest = json.loads((folder / MANIFEST).read_text())
            if manifest.get("format") != EXPORT_FORMAT:
                raise ValueError(f"export format {manifest.get('format', 1)}, this stpr reads {EXPORT_FORMAT}: "
                                 "export the model again with `stpr export --onnx`")
            self.cfg = STPRConfig.from_dict(manifest["stpr_config"])
            self.names = list(manifest["state_names"])
            self.look = manifest.get("look")  # the tone look baked into decode.onnx (None: one look)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{folder} is not an stpr ONNX export: {e}") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # onnxruntime's own pool spins like OpenMP's (see stpr._threads): not on a shared machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.enc = ort.InferenceSession(str(folder / "encode.onnx"), opts, providers=["CPUExecutionProvider"])
            self.dec = ort.InferenceSession(str(folder / "decode.onnx"), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"cannot load ONNX model from {folder}: {e}") from None
        # Inputs a graph does not use (e.g. neighbour states with T = 1) are pruned by the exporter.
        self._dec_inputs = {i.name for i in self.dec.get_inputs()}
        # The padding multiple of the same architecture (a meta-device model costs nothing).
        with torch.device("meta"):
            self._shape_model = STPR(self.cfg)
        self.multiple = self._shape_model.multiple

    def eval(self) -> "OnnxSTPR":
        return self

    def pad(self, x: torch.Tensor):
        return STPR.pad(self._shape_model, x)

    def encode_frame(self, x: torch.Tensor, stats: torch.Tensor) -> FrameState:
        outs = self.enc.run(None, {"x": _np(x), "stats": _np(stats)})
        return _state_from([torch.from_numpy(o) for o in outs], x, stats)

    def decode(self, window: list[FrameState], flows=None):
        feed = {}
        for t, s in enumerate(window):
            for n, v in zip(_FRAME_INPUTS + self.names, [s.x, s.stats, *_state_tensors(s)]):
                if f"f{t}_{n}" in self._dec_inputs:
                    feed[f"f{t}_{n}"] = _np(v)
        out = self.dec.run(["out"], feed)[0]
        return torch.from_numpy(out), {}


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().numpy())
