"""models layer of sparsediff."""
