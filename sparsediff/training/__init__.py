"""training layer of sparsediff."""
