"""Every use of a private or undocumented part of FastAPI, Starlette and uvicorn, one module per
framework, each use with its reason. Nothing else in apictl reaches past their documented API
(tests/http/test_frameworks.py checks it); pyproject.toml bounds the versions these were proven
on, and CI runs the suite at both ends of the range."""
