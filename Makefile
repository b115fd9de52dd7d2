# `make demo` and `make test` each create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.xframe-installed

.PHONY: demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev,tensorflow,jax,sweep]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	KERAS_BACKEND=torch $(PY) -c "import torch, torchvision, keras, onnx, onnxruntime, rich, matplotlib, pytest"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/compare.py densenet121

test: $(STAMP)
	-sh scripts/install_chromium.sh
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check comparator adapters scripts tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
