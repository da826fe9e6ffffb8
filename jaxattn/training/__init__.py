"""Training: the one trainer (a member axis of independent models, any optax transformation),
its state and checkpoints, early stopping, penalties and deceptive training."""
