# Two entry points for a fresh machine:
#   make validate  installs, then runs the accuracy and FPS acceptance tests on the embedded default
#   make test      installs, then runs the plugin's own test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: install validate test clean

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

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
