"""`python -m apictl`."""

from apictl.cli import main

main()
