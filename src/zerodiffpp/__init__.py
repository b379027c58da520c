"""ZeroDiff / ZeroDiff++ for (generalized) zero-shot learning, as a DVC benchmark pipeline."""

__version__ = "0.1.0"

# No OMP_WAIT_POLICY here: PASSIVE made one 2-thread training process 2.5x slower on 2 cores
# (DFG 99 vs 39 ms per iteration, benchmarks/omp_wait.py).  Parallel workers sharing the cores set
# runtime.threads=1 instead (README, "several workers"), which leaves OpenMP nothing to spin.
