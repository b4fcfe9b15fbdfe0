"""Networks layer: the torch modules (U-Net, completion autoencoder, EDM preconditioning)."""
