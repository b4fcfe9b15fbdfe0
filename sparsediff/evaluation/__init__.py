"""evaluation layer of sparsediff."""
