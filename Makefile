# Two entry points for a newcomer: `make demo` and `make test`.
# Both bootstrap uv into .tools/ (if uv is not on PATH) and sync .venv from uv.lock.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv

.PHONY: venv demo test lint typecheck proto clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: uv.lock pyproject.toml */pyproject.toml | $(UV)
	$(UV) sync --frozen --all-packages --group dev
	touch $@

venv: $(VENV)/.synced

demo: venv
	$(VENV)/bin/shelflink demo $(DEMO_ARGS)

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

proto: venv
	$(VENV)/bin/python -m shelflink.device.proto_build

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
