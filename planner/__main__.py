"""`python -m planner` is `memfit`."""

from .cli import main

main()
