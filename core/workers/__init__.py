"""The worker runtime shared by every multi-process stage (train, audit scoring).

- :mod:`core.workers.launch`: the parent side; starts ``python -m <worker> <run_dir>`` on
  every rank (local / torchrun / deepspeed / srun), waits, names the rank that failed.
- :mod:`core.workers.process`: the rank side; environment, rank logs, done / error markers
  (:func:`~core.workers.process.run_worker`), process-group init and shutdown.
- :mod:`core.workers.env`: the launcher's environment (srun's SLURM_* -> RANK etc.), the
  device index, threads per rank.
- :mod:`core.workers.nodes`: several torchrun nodes, one writer (node 0 leads, others follow).
- :mod:`core.workers.faults`: the filesystem fault behind a worker's death, in one line.
- :mod:`core.workers.collective`: inside a rank; rank / world, a share of the work,
  results gathered back in input order, broadcast, barrier, sums.

Import the module you need: this package imports none of them (``collective`` imports
torch, and ``process`` must run before DeepSpeed is imported).
"""
