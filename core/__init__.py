"""What every spikein package shares: errors, atomic I/O, run-dir locks, progress output, W&B,
the typed config groups, the training budget, the worker runtime (core/workers/).
Imports nothing else of spikein."""
