"""`python -m selfheal.cli` runs the `selfheal` command (used by tests and scripts)."""

from selfheal.cli import main

main.main()
