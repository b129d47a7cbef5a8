# Everyday tasks; CI (.ci/run) calls the same commands.
PY ?= .venv/bin
# One resolution for every platform and Python >= 3.11, with the hash of every file (docs/development.md)
COMPILE = $(PY)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --quiet

.PHONY: install serve test test-lowest lint docs docs-serve lock lock-upgrade
install:  # from the lock, then the project itself, editable
	python3 -m venv .venv && $(PY)/pip install -r requirements/dev.txt && $(PY)/pip install --no-deps -e .
serve:
	$(PY)/apictl serve
test:
	$(PY)/pytest
# The request path's tests (the differential test of compiled routes included) at the lowest
# versions pyproject.toml allows: the floors of the declared range are proven, not assumed
LOWEST_TESTS = tests/http tests/health tests/events/test_stream.py tests/process/test_drain.py
test-lowest:
	rm -rf .venv-lowest && python3 -m venv .venv-lowest
	$(PY)/uv pip install --quiet --python .venv-lowest/bin/python --resolution lowest-direct -e ".[embedded,test]"
	.venv-lowest/bin/python -c 'import fastapi, starlette, uvicorn as u; print("lowest: fastapi", fastapi.__version__, "starlette", starlette.__version__, "uvicorn", u.__version__)'
	.venv-lowest/bin/pytest -p no:cacheprovider -m "not faults and not standalone" $(LOWEST_TESTS)
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
