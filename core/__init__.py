"""What every spikein package shares: errors, atomic I/O, run-dir locks, progress output, W&B, the typed config groups. Imports nothing else of spikein."""
