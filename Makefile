# Two commands on a fresh machine: `make demo` (the whole chain on the bundled example) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# PyTorch for the torch runtime's tests, only where the machine holds a CPU wheel (PyPI's Linux wheel is the
	# CUDA build, several GB); elsewhere those tests skip and say why
	if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then \
		$(PY) -m pip install --quiet /opt/wheels/torch-*+cpu-*.whl 'lightning>=2.4'; fi
	touch $@

install: $(VENV)/.installed

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/startup.py
	$(PY) bench/tweak.py

clean:
	rm -rf $(VENV) .cache .mlops-demo
