"""Fill layer: tiles, sampling, blending, streaming to Zarr (stage 3)."""
