"""The ``sweeps`` Hydra sweeper: ``python app.py -m hydra/sweeper=sweeps`` sweeps an existing Hydra app
with the service's study (TPE, Hyperband pruning through ``sweeps.api.report``), asynchronous job
slots under any Hydra launcher, and MLflow tracking."""
