# Two entry points: `make demo` and `make test`. Both create .venv on first use (a few minutes),
# later runs reuse it (the stamp is renewed only when pyproject.toml or requirements.lock change).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keypointnerf-installed

.PHONY: test demo venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; letting a dependency resolve it pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/keypointnerf demo $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
