"""ZeroDiff / ZeroDiff++ for (generalized) zero-shot learning, as a DVC benchmark pipeline."""

__version__ = "0.1.0"

import os as _os

# Spinning OpenMP workers collapse throughput when two torch processes share the cores
# (parallel `dvc queue` workers, CI beside other jobs); passive waiting costs nothing alone.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
