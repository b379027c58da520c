"""Feature-generating ZSL baselines trained in the ZeroDiff harness (same prepared features,
splits, seen fraction and final-classifier protocol).  ``BASELINES`` maps the names allowed in
``baselines.methods`` to their trainer classes (:class:`.base.BaselineTrainer` subclasses)."""
from __future__ import annotations

from .base import BaselineTrainer
from .fclswgan import FCLSWGAN
from .fvaegan import FVAEGAN

BASELINES: dict[str, type[BaselineTrainer]] = {cls.name: cls for cls in (FCLSWGAN, FVAEGAN)}


def get_baseline(name: str) -> type[BaselineTrainer]:
    """Trainer class of ``name``; KeyError naming the known methods otherwise."""
    try:
        return BASELINES[name]
    except KeyError:
        raise KeyError(f"unknown baseline {name!r} (known: {', '.join(sorted(BASELINES))})") from None


__all__ = ["BASELINES", "BaselineTrainer", "FCLSWGAN", "FVAEGAN", "get_baseline"]
