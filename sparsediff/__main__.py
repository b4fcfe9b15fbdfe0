"""``python -m sparsediff`` is the ``sparsediff`` command."""

from sparsediff.cli import main

main()
