# Two entry points for a fresh machine with nothing but Python: `make demo` and `make test`.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install browser demo test lint bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

install: .venv/.synced

demo: install
	.venv/bin/modelwatch demo --out demo-output

lint: install
	.venv/bin/ruff check --no-cache .

# Debian's chromium for the dashboard's browser tests (they skip, saying why, where it is absent).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed (needs root and apt-get): browser tests will be skipped"; }

test: install lint browser
	.venv/bin/pytest -q

bench: install
	.venv/bin/python -m benchmarks.data_quality
	.venv/bin/python -m benchmarks.summary
	.venv/bin/python -m benchmarks.merge
	.venv/bin/python -m benchmarks.bias_drift
	.venv/bin/python -m benchmarks.detection
	.venv/bin/python -m benchmarks.attribution_drift
	.venv/bin/python -m benchmarks.cli
	.venv/bin/python -m benchmarks.capture
	.venv/bin/python -m benchmarks.console

clean:
	rm -rf .venv $(TOOLS) demo-output modelwatch-store .pytest_cache
