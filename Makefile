# Two entry points: `make demo` and `make test`. Both create .venv on first use (a few minutes),
# later runs reuse it (the stamp is renewed only when pyproject.toml or requirements.lock change).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keypointnerf-installed

.PHONY: test demo venv clean-venv browser

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; letting a dependency resolve it pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[test,view]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/keypointnerf demo $(DEMO_ARGS)

# Headless Chromium (Debian's package) for the viewer's browser test, which is skipped without it: installed when
# missing and apt-get is allowed (root), otherwise a note; never fails.
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "browser: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: installing Debian's chromium (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null) || echo "browser: apt-get failed; the browser test will be skipped"; \
	else echo "browser: no chromium and no apt-get as root; the browser test will be skipped"; fi

clean-venv:
	rm -rf $(VENV)
