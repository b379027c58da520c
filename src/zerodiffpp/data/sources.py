"""Pick the data source named by ``data.dataset`` and return a validated :class:`ZSLData`.

Every source sets ``extra['embedding_norm_default']`` (``l2``/``none``) and a canonical
``source`` string; ``write_raw`` stores both in ``dataset.json``.
"""
from __future__ import annotations

from ..config import ConfigError, DataConfig
from .schema import ZSLData

XLSA17 = ("AWA2", "CUB", "SUN")


def build_dataset(cfg: DataConfig, show_progress: bool = True) -> ZSLData:
    ds = cfg.dataset
    if cfg.feature_source == "zerodiff" and ds not in XLSA17:
        raise ConfigError(f"data.feature_source=zerodiff: only for {', '.join(XLSA17)} "
                          f"(data.dataset={ds}); use auto or extract")
    if cfg.class_embedding == "sent" and ds not in XLSA17:
        raise ConfigError(f"data.class_embedding=sent: only for xlsa17 datasets with a "
                          f"sent_splits.mat (CUB), not data.dataset={ds}")
    if ds == "synthetic":
        from . import synthetic
        return synthetic.make(cfg.synthetic)
    if ds == "animals":
        from . import animals
        return animals.load(cfg, show_progress)
    if ds == "snu-b36-ex":
        from . import snu
        return snu.load(cfg, show_progress)
    if ds in XLSA17:
        from . import xlsa17
        return xlsa17.load(cfg, show_progress)
    raise ConfigError(f"data.dataset={ds!r}: no source for it")  # config.DATASETS guards this


def summary(data: ZSLData) -> str:
    """One line: classes seen/unseen and samples per split."""
    return (f"{data.name}: {data.n_classes} classes ({len(data.seen_classes())} seen / "
            f"{len(data.unseen_classes())} unseen), {data.features.shape[1]}-d features, "
            f"{data.class_embeddings.shape[1]}-d class embeddings; samples trainval "
            f"{data.trainval_loc.size}, test_seen {data.test_seen_loc.size}, test_unseen "
            f"{data.test_unseen_loc.size}")
