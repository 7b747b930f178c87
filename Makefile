# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
EXTRAS ?= all,test
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

export ORT_DISABLE_TELEMETRY := 1
export OPENVINO_TELEMETRY := 0

.PHONY: venv demo test test-all bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build here
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	# xtcocotools' PyPI wheel is built against numpy 1; build it against the installed numpy 2
	$(PIP) install -q cython setuptools && $(PIP) install -q --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
	touch $@

# The main job: accuracy vs latency of every installed runtime and precision on the same crops,
# plus drawings on the bundled photos. --threads 1 keeps the timings stable on a shared 2-core box.
demo: venv
	$(BIN)/dwpose-edge bench --quick --threads 1 --out out/bench
	$(BIN)/dwpose-edge demo --out out/demo

# pytest-benchmark suite, then the same report from its JSON
bench: venv
	mkdir -p out/bench
	$(BIN)/python -m pytest bench/ --benchmark-json out/bench/pytest.json
	$(BIN)/dwpose-edge bench --from-pytest-benchmark out/bench/pytest.json --out out/bench/pytest

test: venv
	$(BIN)/python -m pytest -q tests

test-all: venv
	$(BIN)/python -m pytest -q -m "" tests

clean:
	rm -rf $(VENV) out .pytest_cache
