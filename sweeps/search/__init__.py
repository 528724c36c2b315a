"""The search: spaces, the Optuna study (storage, sampler, pruner), Hyperband arithmetic, stored configs, the preview."""
