"""`python -m vroegsignaal.deploycheck`: what `make deploy-check` runs."""

from vroegsignaal.deploycheck.runner import main

main()
