# Everyday tasks; CI (.ci/run) calls the same commands.
PY ?= .venv/bin

.PHONY: install serve test lint docs
install:
	python3 -m venv .venv && $(PY)/pip install -e '.[test]'
serve:
	$(PY)/apictl serve
test:
	$(PY)/pytest
lint:
	$(PY)/ruff check . && $(PY)/ruff format --check . && $(PY)/mypy && $(PY)/apictl migrate lint \
		&& $(PY)/python scripts/readme.py --check
docs:  # regenerate README.md's command and settings tables from the code
	$(PY)/python scripts/readme.py
