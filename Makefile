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

# The first minutes on a GPU machine (see the README's GPU section):
#   make wheelhouse  here, with network, after make install: wheels the GPU machine may lack (< 60 MB)
#   make gpu-check   there, offline: gpu unit tests, torch CUDA fp32/fp16, CUDA graphs, TensorRT if it imports;
#                    writes $(GPU_CHECK_OUT)/gpu-check.json and gpu-check.log; GPU steps skip with a reason on CPUs
WHEELHOUSE ?= .wheelhouse
GPU_PYTHON_VERSION ?= 3.12
GPU_PYTHON ?= python3
GPU_CHECK_OUT ?= $(OUT)/gpu-check

wheelhouse:
	$(PY) scripts/gpu_check.py wheelhouse --dir $(WHEELHOUSE) --python-version $(GPU_PYTHON_VERSION)

gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py run --wheelhouse $(WHEELHOUSE) --out $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .gpu-check-venv
