"""diffusion layer of sparsediff."""
