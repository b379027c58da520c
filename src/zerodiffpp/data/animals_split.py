"""How the fixed ``animals`` split was chosen (docs/data.md "Split"): a diagnostic, never run by
the pipeline.  ``python -m zerodiffpp.data.animals_split`` prints every 3-class unseen set that
passes the coverage rule, ranked by :func:`separability` (smallest first).

The rule is computed from the attribute table alone.  It is only a weak predictor of accuracy
across splits, so the benchmark's split is a constant (``animals.UNSEEN``) and not re-derived
from this ranking at run time.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..io import DataError
from . import animals


@dataclass(frozen=True)
class SplitScore:
    unseen: tuple[str, ...]
    max_projected_cosine: float          # largest pairwise cosine of the projected unseen rows
    nearest_seen: tuple[str, ...]        # nearest seen class of each unseen class (cosine)

    @property
    def distinct_nearest(self) -> bool:
        return len(set(self.nearest_seen)) == len(self.nearest_seen)


def separability(table: np.ndarray, unseen: tuple[str, ...]) -> SplitScore:
    """Project each unseen class's (L2-normalised) attribute vector on the span of the seen
    classes' vectors -- the part any attribute -> feature map learnt on seen classes can
    express -- and return the largest pairwise cosine between those projections (close to 1 =
    two unseen classes look alike to everything learnt on seen data)."""
    classes = list(animals.CLASSES)
    att = table.T / np.linalg.norm(table.T, axis=1, keepdims=True)        # class x attribute
    u = [classes.index(c) for c in unseen]
    s = [i for i in range(len(classes)) if i not in u]
    basis, _ = np.linalg.qr(att[s].T)                                     # orthonormal span
    proj = att[u] @ basis @ basis.T
    proj /= np.linalg.norm(proj, axis=1, keepdims=True)
    cos = proj @ proj.T
    worst = max(float(cos[i, j]) for i, j in itertools.combinations(range(len(u)), 2))
    nearest = tuple(classes[s[int(np.argmax(att[s] @ att[i]))]] for i in u)
    return SplitScore(tuple(unseen), worst, nearest)


def rank_splits(n_unseen: int = 3) -> list[SplitScore]:
    names, _, table = animals.read_attribute_table()
    scores = []
    for unseen in itertools.combinations(animals.CLASSES, n_unseen):
        try:
            animals.check_coverage(table, names, unseen)
        except DataError:
            continue
        scores.append(separability(table, unseen))
    return sorted(scores, key=lambda r: (r.max_projected_cosine, r.unseen))


def main() -> None:
    ranked = rank_splits()
    print(f"{len(ranked)} admissible 3-class unseen sets (coverage rule), smallest largest "
          "projected cosine first; * = the benchmark's split")
    for rank, r in enumerate(ranked, 1):
        mark = "*" if set(r.unseen) == set(animals.UNSEEN) else " "
        print(f"{mark}{rank:3d}  {r.max_projected_cosine:.3f}  {'/'.join(r.unseen):24s} "
              f"nearest seen: {', '.join(r.nearest_seen)}")


if __name__ == "__main__":
    main()
