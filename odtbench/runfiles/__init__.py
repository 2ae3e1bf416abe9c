"""A run's directory and files: atomic writes, the code hash, the result contract and its schemas, checkpoints, run directories and locks, results, diagnostics, progress and live logging."""
