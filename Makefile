# Two entry points for a fresh machine:
#   make validate  installs, then runs the accuracy and FPS acceptance tests on the embedded default
#   make test      installs, then runs the plugin's own test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: install validate test clean wheelhouse gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

validate: install
	mkdir -p $(OUT)
	$(PY) -m pytest -m "accuracy or performance" --embedded --precision fp32,fp16,int8 \
		--benchmark-json=$(OUT)/benchmark.json $(ARGS)

test: install
	$(PY) -m pytest tests/unit tests/plugin $(ARGS)

# The first minutes on a GPU machine (docs/gpu-first-call.md has the exact one-call command):
#   make wheelhouse  here, with network, after make install: wheels the GPU machine may lack (< 60 MiB with the tree)
#   make gpu-check   there, offline, within GPU_CHECK_LIMIT seconds: probe, setup, torch CUDA fp32/fp16, CUDA graphs,
#                    gpu unit tests, TensorRT if it imports; $(GPU_CHECK_OUT)/gpu-check.json is rewritten after every
#                    phase (a killed run leaves it valid); GPU phases skip with a reason on CPUs
WHEELHOUSE ?= .wheelhouse
GPU_PYTHON_VERSION ?= 3.12
GPU_PYTHON ?= python3
GPU_CHECK_OUT ?= $(OUT)/gpu-check
GPU_CHECK_LIMIT ?= 525

wheelhouse:
	$(PY) scripts/gpu_check.py wheelhouse --dir $(WHEELHOUSE) --python-version $(GPU_PYTHON_VERSION)

gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py run --wheelhouse $(WHEELHOUSE) --out $(GPU_CHECK_OUT) --limit $(GPU_CHECK_LIMIT)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .gpu-check-venv
