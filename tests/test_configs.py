"""The training configs in the repository, and the ablation studies built on them, still load:
every field known, every model buildable (a renamed or retired option shows up here, not an hour
into a study)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from stpr.errors import UsageError
from stpr.models import STPRConfig
from stpr.models.stpr_arch import RETIRED_AT
from stpr.train_config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*ROOT.glob("configs/*.json"), *ROOT.glob("experiments/configs/*.json")])


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate", ROOT / "scripts" / "ablate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ablate"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_loads_and_builds_its_model(path):
    try:
        cfg = load_config(str(path), [])
    except UsageError as e:
        # experiments of retired options run from the last commit that has them (docs say so)
        assert path.parent.name == "configs" and path.parent.parent.name == "experiments", e
        assert RETIRED_AT in str(e)
        return
    STPRConfig.from_dict(cfg.model)


@pytest.mark.parametrize("study", ["parts", "fast"])
def test_every_ablation_variant_is_a_valid_model(study):
    s = _ablate().STUDIES[study]
    base = json.loads((ROOT / s.config).read_text())
    assert "full" in s.variants
    init = base.get("init", "")
    assert init and (ROOT / init).is_file()  # each study starts from shipped weights
    for name, (overrides, what) in s.variants.items():
        cfg = STPRConfig.from_dict({**base.get("model", {}), **overrides})
        assert what
        for k, v in overrides.items():
            assert getattr(cfg, k) == v, name


def test_fast_study_starts_from_the_fast_model_with_its_layout():
    s = _ablate().STUDIES["fast"]
    base = json.loads((ROOT / s.config).read_text())
    fast = json.loads((ROOT / "configs" / "fast.json").read_text())
    assert base["model"] == fast["model"] and base["init"].endswith("stpr_fast.safetensors")
    assert "pixel_fusion" in s.variants and "no_pixel_fusion" not in s.variants


def test_parts_study_starts_from_the_quality_model_with_its_recipe():
    """The parts study fine-tunes the shipped quality model with the model section of the config
    that made it (configs/v8.json: its looks), so its "full" row is that model, and scores it as
    shipped: the LOL column in the lol look, the network without the output's temporal filter."""
    s = _ablate().STUDIES["parts"]
    base = json.loads((ROOT / s.config).read_text())
    v8 = json.loads((ROOT / "configs" / "v8.json").read_text())
    assert base["model"] == v8["model"] and base["init"].endswith("stpr_default.safetensors")
    assert s.look in v8["model"]["looks"]
    assert s.eval_args == ("--temporal-filter", "0")


def test_v7_study_still_builds_its_variants():
    s = _ablate().STUDIES["v7"]
    base = json.loads((ROOT / s.config).read_text())
    assert base["init"] == "runs/v7.safetensors" and not s.look
    for overrides, _ in s.variants.values():
        STPRConfig.from_dict({**base.get("model", {}), **overrides})
