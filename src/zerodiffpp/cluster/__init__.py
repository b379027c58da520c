"""Run the scarce-data sweep cells as SLURM jobs against a shared DVC cache.

``python -m zerodiffpp.cluster submit|status|requeue`` (README "Running the grid on a SLURM
cluster", docs/cluster.md).  Each cell (dvc.yaml stage ``sweep@<method>-<fraction>-<seed>``)
runs ``dvc repro --single-item`` in its own git worktree whose DVC cache is the shared one, so
the cell lands in the shared run-cache and ``dvc repro`` on the login node assembles
``aggregate`` / ``figures`` without training.

Nothing else in the package imports this subpackage: it drives DVC and SLURM from outside and is
not a dependency of any stage.
"""
