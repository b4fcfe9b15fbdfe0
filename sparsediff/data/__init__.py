"""data layer of sparsediff."""
