"""Names shared by the sweep cells (producer) and the aggregation (consumer), kept free of
heavy imports so that ``aggregate`` depends on these few lines, not on the training code."""
from __future__ import annotations

# method of a sweep cell -> the metrics it reports (one ZeroDiff model gives four variants)
VARIANTS: dict[str, tuple[str, ...]] = {
    "zerodiff": ("zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp"),
    "fclswgan": ("fclswgan",),
    "fvaegan": ("fvaegan",),
}
METHODS = tuple(VARIANTS)


def fraction_str(fraction: float) -> str:
    """The fraction as DVC writes it into the matrix stage name and the cell directory
    (``str`` of the YAML float: 1.0 -> ``1.0``, 0.1 -> ``0.1``)."""
    return str(float(fraction))


def cell_name(method: str, fraction: float, seed: int) -> str:
    """``<method>-<fraction>-<seed>``: the cell directory under runs/sweep and the matrix
    stage name after ``sweep@``."""
    return f"{method}-{fraction_str(fraction)}-{int(seed)}"
