# `make demo` and `make test` each create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xframe-installed
OVERLAYS := $(VENV)/.xframe-overlays

.PHONY: demo test lint clean overlays

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev,tensorflow,jax,sweep]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	KERAS_BACKEND=torch $(PY) -c "import torch, torchvision, keras, onnx, onnxruntime, rich, matplotlib, pytest"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/compare.py densenet121

# Framework versions the tests compare: Keras 2 (tf_keras, which declares a dependency on
# the full `tensorflow` package, so it goes in without dependencies beside the tensorflow
# extra's tensorflow-cpu) and the keras-nightly overlay in the tool's cache
# (~/.cache/xframe-compare or $$XFRAME_CACHE_DIR). Offline, the tests that need them skip.
$(OVERLAYS): $(STAMP)
	-$(PY) -m pip install -q --no-deps 'tf-keras>=2.21,<2.22' 2>&1 | grep -v "is ignored: it is neither" || true
	-$(PY) -m adapters.keras.overlays keras-torch@nightly
	touch $(OVERLAYS)

overlays: $(OVERLAYS)

test: $(STAMP) $(OVERLAYS)
	-sh scripts/install_chromium.sh
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check comparator adapters scripts tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
