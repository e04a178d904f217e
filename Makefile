# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lianfang demo

# WebRTC runs in its own process: PyAV (aiortc) and OpenCV each bundle FFmpeg, and the two in
# one long test process crashed once in libvpx. The rest of the suite is one process.
test: $(STAMP)
	$(BIN)/python -m pytest -q -rf --ignore=tests/test_webrtc.py
	$(BIN)/python -m pytest -q -rf tests/test_webrtc.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy gateway device_adapters rules

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
