"""Training: the Lightning plan, KL / masking schedules and the trainer factory."""
