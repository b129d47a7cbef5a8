# Everyday tasks; CI (.ci/run) calls the same commands.
PY ?= .venv/bin
# One resolution for every platform and Python >= 3.11, with the hash of every file (docs/development.md)
COMPILE = $(PY)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --quiet

.PHONY: install serve test lint docs docs-serve lock lock-upgrade
install:  # from the lock, then the project itself, editable
	python3 -m venv .venv && $(PY)/pip install -r requirements/dev.txt && $(PY)/pip install --no-deps -e .
serve:
	$(PY)/apictl serve
test:
	$(PY)/pytest
lint:
	$(PY)/ruff check . && $(PY)/ruff format --check . && $(PY)/mypy && $(PY)/lint-imports \
		&& $(PY)/apictl migrate lint && $(PY)/python scripts/docgen.py --check
docs:  # regenerate the docs' generated pages from the code, then build the site into site/
	$(PY)/python scripts/docgen.py && NO_MKDOCS_2_WARNING=1 $(PY)/mkdocs build --strict
docs-serve:  # the site at http://127.0.0.1:8000, rebuilt on every change
	NO_MKDOCS_2_WARNING=1 $(PY)/mkdocs serve
lock:  # after editing pyproject.toml's dependencies: re-resolve, keeping every pin that still fits
	$(COMPILE) --extra embedded --extra test --extra bench --extra docs $(UPGRADE) -o requirements/dev.txt
	$(COMPILE) -c requirements/dev.txt -o requirements/app.txt
	$(COMPILE) --extra embedded -c requirements/dev.txt -o requirements/local.txt
lock-upgrade:  # every package to its newest release that pyproject.toml allows
	$(MAKE) lock UPGRADE=--upgrade
