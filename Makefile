# Two commands on a fresh machine: `make demo` and `make test`.
# `make demo` installs only what the gateway needs; `make test` adds the development tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test lint typecheck bench clean venv

# A .venv made by another or a too-old Python (or a broken one) is rebuilt, not reused:
# `venv` compares the interpreter that made it with $(PYTHON) on every run.
venv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Lianfang needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
	  echo "Install one and run: make PYTHON=python3.11 ..."; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "'$(PYTHON)' cannot make virtual environments: apt-get install python3-venv"; exit 1; }
	@want="$$($(PYTHON) -c 'import sys; print(sys.version.split()[0], sys.base_prefix)')"; \
	have="$$(cat $(VENV)/.made-by 2>/dev/null)"; \
	if [ "$$want" != "$$have" ] || ! $(BIN)/python -c '' 2>/dev/null; then \
	  if [ -d $(VENV) ]; then echo "rebuilding $(VENV): made by '$${have:-an unknown Python}', now '$$want'"; fi; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) && echo "$$want" > $(VENV)/.made-by; \
	fi

$(RUNTIME): pyproject.toml
	@echo "installing Lianfang and what it needs to run into $(VENV) (a few minutes the first time)"
	$(PIP) install --upgrade --progress-bar on pip
	$(PIP) install --progress-bar on -e .
	@touch $@

$(DEV): $(RUNTIME)
	@echo "installing the development tools (pytest, ruff, mypy, playwright, ...)"
	$(PIP) install --progress-bar on -e '.[dev]'
	@touch $@

demo: venv
	@$(MAKE) --no-print-directory $(RUNTIME)
	$(BIN)/lianfang demo

# WebRTC runs in its own process: PyAV (aiortc) and OpenCV each bundle FFmpeg, and the two in
# one long test process crashed once in libvpx. The rest of the suite is one process.
test: venv
	@$(MAKE) --no-print-directory $(DEV)
	$(BIN)/python -m pytest -q -rf --ignore=tests/test_webrtc.py
	$(BIN)/python -m pytest -q -rf tests/test_webrtc.py

lint: venv
	@$(MAKE) --no-print-directory $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	@$(MAKE) --no-print-directory $(DEV)
	$(BIN)/mypy gateway device_adapters rules

bench: venv
	@$(MAKE) --no-print-directory $(DEV)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
