"""Training: the loop, EMA, crash-safe checkpoints, DDP, and the run's log."""
