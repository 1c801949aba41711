"""Saving and loading STPR weights.

A weights file is a single ``.safetensors`` file whose metadata holds the model config as JSON, so
it is self-describing: ``load_model(path)`` rebuilds the right architecture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from stpr.errors import ModelError, UsageError
from stpr.models.stpr_arch import STPR, RetiredOptionError, STPRConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "stpr_default.safetensors"
# The shipped models, by name (``--model fast``): each has its figures in docs/model-card.md.
MODELS = {"quality": DEFAULT_WEIGHTS, "fast": WEIGHTS_DIR / "stpr_fast.safetensors"}


def resolve_weights(model: str | Path | None) -> Path:
    """The weights file ``model`` names: None is the default (``quality``) model, a shipped model's
    name (``MODELS``) its file, unless a file of that name exists here; anything else a path."""
    if model is None or str(model) == "":
        return DEFAULT_WEIGHTS
    if str(model) in MODELS and not Path(model).exists():
        return MODELS[str(model)]
    return Path(model)


def save_model(model: STPR, path: Path, extra: dict | None = None) -> None:
    """Write weights + config atomically (temp file, then rename)."""
    path = Path(path)
    meta = {"stpr_config": json.dumps(model.cfg.to_dict()), "format": "stpr-1"}
    if extra:
        meta.update({k: json.dumps(v) for k, v in extra.items()})
    tmp = path.with_name(f".{path.name}.tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


def read_metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(path: str | Path | None = None, look: str | None = None, **overrides) -> STPR:
    """Build an STPR from a weights file or a shipped model's name (``resolve_weights``). ``overrides`` change inference-only config fields
    (e.g. ``flow_mode="dis"``, ``frames=1``); None values leave the stored setting. ``look`` picks
    one of the tone looks of a model trained with several (``STPR.set_look``; None: its first).

    Files written before options were retired name them in their config: at their off values
    they are ignored, a file with one on cannot be loaded (``STPRConfig.from_dict``).

    Raises:
        ModelError: missing, unreadable, not matching the architecture, or made with a retired option.
        UsageError: the model has no look ``look``.
    """
    path = resolve_weights(path)
    if not path.is_file():
        hint = f" (the shipped models are {', '.join(MODELS)})" if path.suffix == "" else ""
        raise ModelError(f"weights file not found: {path}{hint}")
    try:
        meta = read_metadata(path)
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read weights file {path}: {e}") from None
    if "stpr_config" not in meta:
        raise ModelError(f"{path} is not an stpr weights file (no stpr_config metadata)")
    try:
        cfg_dict = json.loads(meta["stpr_config"])
        if not isinstance(cfg_dict, dict):
            raise ValueError("stpr_config is not a JSON object")
        # Weights saved before pixel fusion existed store every other field but not this one.
        cfg_dict.setdefault("pixel_fusion", False)
        cfg_dict.update({k: v for k, v in overrides.items() if v is not None})
        model = STPR(STPRConfig.from_dict(cfg_dict))
    except RetiredOptionError as e:
        raise ModelError(f"cannot load {path}: model option {e}") from None
    except (ValueError, TypeError, RuntimeError) as e:
        raise ModelError(f"bad model config in {path}: {e}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError:  # same names, different shapes
        missing, unexpected = ["<shape mismatch>"], []
    if missing or unexpected:
        raise ModelError(f"{path} does not match the STPR architecture "
                         f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
    try:
        model.set_look(look)
    except ValueError as e:
        raise UsageError(f"--look {look}: {e}") from None
    return model.eval()


def interpolate_weights(a: Path, b: Path, alpha: float) -> STPR:
    """The model whose every tensor is ``(1 - alpha) * A + alpha * B`` (weight-space averaging,
    as in "model soups" / WiSE-FT): meant for two fine-tunes of one starting point, where the
    average often keeps the best of both. The result has A's config.

    Args:
        a, b: weights files of the same architecture (their stored configs must be equal).
        alpha: B's share, in [0, 1]; 0 gives A, 1 gives B.

    Raises:
        ModelError: a file is missing or unreadable, the configs differ, or alpha is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ModelError(f"alpha must be in [0, 1], got {alpha}")
    model_a, model_b = load_model(a), load_model(b)
    if model_a.cfg != model_b.cfg:
        raise ModelError(f"{a} and {b} have different model configs; only the same architecture "
                         "can be averaged")
    sb = model_b.state_dict()
    mixed = {k: torch.lerp(v, sb[k], alpha) if v.is_floating_point() else v
             for k, v in model_a.state_dict().items()}
    model_a.load_state_dict(mixed)
    return model_a.eval()
