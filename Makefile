# Every set-up step lives here: a fresh machine needs only python3 (3.11+) and pip.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced

# deploy/requirements.txt: the locked runtime dependencies with their hashes, for the deploy guide's
# `pip install --require-hashes` (the project itself is installed after it with --no-deps, so it is not
# emitted: pip refuses an unhashed `-e .` among hashed requirements)
EXPORT_REQUIREMENTS = $(UV) export --frozen --no-dev --no-emit-project --format requirements-txt --quiet

.PHONY: demo test lint typecheck bench bench-many bench-scale clean venv requirements check-requirements

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --compile-bytecode: machines that set PYTHONDONTWRITEBYTECODE would otherwise compile every module
# on every start (about 1.5 s per `libmirror` process here); compileall does the same for our sources.
$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(VENV)/bin/python -m compileall -q daemon bench
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/libmirror demo

test: $(STAMP) check-requirements
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/ruff format --check daemon tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/ruff format --check daemon tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

requirements: $(UV)
	$(EXPORT_REQUIREMENTS) > deploy/requirements.txt

check-requirements: $(UV)
	@$(EXPORT_REQUIREMENTS) | diff -u deploy/requirements.txt - \
		|| { echo "deploy/requirements.txt does not match uv.lock: run make requirements and commit it"; exit 1; }

bench: $(STAMP)
	sh bench/setup.sh
	$(VENV)/bin/python -m bench

# 200 small libraries in one daemon, idle for 10 minutes (RSS, CPU per idle hour per library): apart
# from `make bench`, which it would take past 15 minutes. Shorter by hand: python -m bench.many_libraries 200 60
bench-many: $(STAMP)
	$(VENV)/bin/python -m bench many_libraries

# issue 15's memory benchmark: a library of 100,000 then 1,000,000 files (3 GB of disk; the 1M size takes
# about 25 minutes of CPU, 45 minutes on a busy 2-core machine)
bench-scale: $(STAMP)
	$(VENV)/bin/python -m bench scale

clean:
	rm -rf $(VENV) $(TOOLS)
