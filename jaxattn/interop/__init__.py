"""Models from other code: Jain & Wallace's PyTorch checkpoints in and out."""
