"""`python -m vroegsignaal`: the same as the `vroegsignaal` command."""

from vroegsignaal.cli import main

main()
