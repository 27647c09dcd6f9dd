"""Hyper-parameter sweeps with Optuna: ``spec`` (the YAML search space), ``objective`` (one trial = one run
of the real training loop, reported per validation epoch and pruned), ``study`` (storage, sampler, pruner,
heartbeats, workers, summary) and ``run`` (a whole sweep with its MLflow parent run).

Nothing below the CLI imports this package (docs/ARCHITECTURE.md)."""
