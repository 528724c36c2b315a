"""Training: the objective interface (loader, reporter), the shared trainer, schedules, optimizers, precision."""
