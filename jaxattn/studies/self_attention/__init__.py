"""Studies of self-attention (models with the self-attention seam): head-level interventions."""
