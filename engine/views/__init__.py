"""The engine's HTTP endpoints, one module per concern (jobs, tasks, storage, account, sync)."""
