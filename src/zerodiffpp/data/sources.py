"""Pick the data source named by ``data.dataset`` and return a validated :class:`ZSLData`.

Every source sets ``extra['embedding_norm_default']`` (``l2``/``none``) and a canonical
``source`` string; the name readers report is ``data.name`` when set, else the dataset's
own (``data.dataset``, or the folder name for ``data.dataset: xlsa17``).  ``write_raw``
stores all of it in ``dataset.json`` (``name``, ``dataset``, ``source``, ...).
"""
from __future__ import annotations

from ..config import ConfigError, DataConfig, check_dataset_name
from .schema import ZSLData

NAMED_XLSA17 = ("AWA2", "CUB", "SUN", "APY", "AWA1", "FLO")


def dataset_name(cfg: DataConfig) -> str:
    """The name metrics, figures and the README report for this configuration."""
    if cfg.name is not None:
        return cfg.name
    if cfg.dataset == "xlsa17":
        from .xlsa17 import default_folder_name

        # a folder name can hold characters data.name refuses: then ask for data.name
        return check_dataset_name(default_folder_name(cfg),
                                  "data.name (unset: the folder name of data.local_path)")
    return cfg.dataset


def _load(cfg: DataConfig, name: str, show_progress: bool) -> ZSLData:
    ds = cfg.dataset
    if ds == "synthetic":
        from . import synthetic
        return synthetic.make(cfg.synthetic)
    if ds == "animals":
        from . import animals
        return animals.load(cfg, show_progress)
    if ds == "snu-b36-ex":
        from . import snu
        return snu.load(cfg, show_progress)
    if ds in NAMED_XLSA17:
        from . import xlsa17
        return xlsa17.load(cfg, show_progress, name=name)
    if ds == "xlsa17":
        from . import xlsa17
        return xlsa17.load_any(cfg, name=name)
    raise ConfigError(f"data.dataset={ds!r}: no source for it")  # config.DATASETS guards this


def build_dataset(cfg: DataConfig, show_progress: bool = True) -> ZSLData:
    """Build and validate the dataset; ``extra['dataset']`` records ``data.dataset``.
    (Cross-parameter rules, e.g. ``class_embedding: sent`` only for xlsa17-format data, are
    checked when the config is loaded: :class:`zerodiffpp.config.DataConfig`.)"""
    name = dataset_name(cfg)
    data = _load(cfg, name, show_progress)
    data.name = name
    data.extra["dataset"] = cfg.dataset
    return data.validate()


def summary(data: ZSLData) -> str:
    """One line: classes seen/unseen and samples per split."""
    return (f"{data.name}: {data.n_classes} classes ({len(data.seen_classes())} seen / "
            f"{len(data.unseen_classes())} unseen), {data.features.shape[1]}-d features, "
            f"{data.class_embeddings.shape[1]}-d class embeddings; samples trainval "
            f"{data.trainval_loc.size}, test_seen {data.test_seen_loc.size}, test_unseen "
            f"{data.test_unseen_loc.size}"
            + "".join(f", {k} {getattr(data, k).size}" for k in ("train_loc", "val_loc")
                      if getattr(data, k) is not None))
