"""Studies of self-attention models (the models with the self-attention seam)."""
