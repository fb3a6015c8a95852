"""`python -m curation` is the `curation` command."""

from curation.cli.app import main

main()
