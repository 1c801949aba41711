"""Fixtures shared by the test modules (plain helpers are in ``helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import make_lol, save_weights, tiny_model


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: tiny models on a shared machine (other CPU-heavy jobs
    run beside the tests), where intra-op thread sync costs far more than these small convolutions.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A weight file of ``helpers.tiny_model()`` (modules needing other weights override this)."""
    return save_weights(tmp_path_factory, tiny_model())


@pytest.fixture(scope="module")
def lol_root(tmp_path_factory) -> Path:
    """Three 64x48 LOL-style pairs (``helpers.make_lol``): low = high * 0.1 + noise."""
    return make_lol(tmp_path_factory.mktemp("lol"))
