"""The README figures (matplotlib Agg + seaborn, no network, no torch).

* :func:`h_vs_fraction`            GZSL H vs seen fraction per method: seed mean with a
                                   +-1 std band and the individual seeds as points.
* :func:`spuriousness_vs_fraction` s_seen and s_unseen vs seen fraction, two panels
                                   (lower is better, 0 = none; dashed zero line).
* :func:`training_curves`          loss_D / loss_G per epoch of DRG, DFG and the baselines.
* :func:`embedding`                2-D PCA of real test-unseen features against generated
                                   unseen features, without DiffGen (ZeroDiff) and with it
                                   (ZeroDiff++).

Every function takes plain data (DataFrames / arrays) and a path; files are written atomically
with fixed metadata, so the same inputs give the same PNG bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

# Same colour and order for every method in every figure.
METHOD_ORDER = ("zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp", "fclswgan", "fvaegan")
LABELS = {"zerodiff": "ZeroDiff", "zerodiff_tta": "ZeroDiff + DiffTTA",
          "zerodiff_diffgen": "ZeroDiff + DiffGen", "zerodiffpp": "ZeroDiff++",
          "fclswgan": "f-CLSWGAN", "fvaegan": "f-VAEGAN"}
# Distinct markers and dashes, so methods with identical numbers stay visible.
MARKERS = {"zerodiff": "o", "zerodiff_tta": "s", "zerodiff_diffgen": "^", "zerodiffpp": "D",
           "fclswgan": "v", "fvaegan": "P"}
DASHES = {"zerodiff": "-", "zerodiff_tta": "--", "zerodiff_diffgen": ":", "zerodiffpp": "-",
          "fclswgan": "-.", "fvaegan": "-."}
DODGE = 0.03          # methods are shifted by a few % along the (log) fraction axis
DPI = 120


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"svg.hashsalt": "zerodiffpp", "figure.dpi": DPI})
    return plt, sns


def _palette(methods: Sequence[str]) -> dict:
    import seaborn as sns

    colours = sns.color_palette("colorblind", len(METHOD_ORDER))
    return {m: colours[METHOD_ORDER.index(m) if m in METHOD_ORDER else 0] for m in methods}


def _ordered(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def _save(fig, path: str | Path) -> Path:
    """PNG, written atomically, without a creation timestamp (reproducible bytes)."""
    from .io import atomic_path

    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def _fraction_axis(ax, fractions: Sequence[float]) -> None:
    fr = sorted(set(float(f) for f in fractions))
    ax.set_xscale("log")
    ax.set_xticks(fr)
    ax.set_xticklabels([f"{100 * f:g}%" for f in fr])
    ax.minorticks_off()
    lo, hi = min(fr), max(fr)
    ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.set_xlabel("seen training data kept (train.seen_fraction, log scale)")


def _metric_vs_fraction(ax, long, metric: str, methods: Sequence[str], palette: dict,
                        ylabel: str, title: str) -> None:
    data = long[long["metric"] == metric].dropna(subset=["value"])
    for i, m in enumerate(methods):
        d = data[data["method"] == m]
        if d.empty:
            continue
        shift = float(np.exp(DODGE * (i - (len(methods) - 1) / 2)))
        g = d.groupby("fraction")["value"]
        stats = g.agg(["mean", "std", "count"]).sort_index()
        std = stats["std"].fillna(0.0)
        x = stats.index.to_numpy(float) * shift
        ax.plot(x, stats["mean"], marker=MARKERS.get(m, "o"), ls=DASHES.get(m, "-"),
                color=palette[m], label=LABELS.get(m, m), lw=1.8, ms=6)
        ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, color=palette[m], alpha=0.12,
                        lw=0)
        ax.scatter(d["fraction"].to_numpy(float) * shift, d["value"], color=palette[m], s=12,
                   alpha=0.6, lw=0, marker=MARKERS.get(m, "o"))
    _fraction_axis(ax, long["fraction"].unique())
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def h_vs_fraction(long, path: str | Path, dataset: str = "") -> Path:
    """``long``: the long-form sweep table (method, fraction, seed, metric, value)."""
    plt, _ = _plt()
    methods = _ordered(long["method"].unique())
    palette = _palette(methods)
    n_seeds = long["seed"].nunique()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    _metric_vs_fraction(ax, long, "h", methods, palette, "GZSL harmonic mean H (%)",
                        f"GZSL H vs seen fraction{' on ' + dataset if dataset else ''} "
                        f"(line: mean over {n_seeds} seed{'s' * (n_seeds != 1)}, band: ±1 std, "
                        "dots: seeds)")
    ax.title.set_fontsize(10)
    ax.legend(title="method", fontsize=8, title_fontsize=9, loc="best")
    return _save(fig, path)


# Axis labels of the two metrics (docs/spuriousness.md "Definitions"): both are 0 for a generator
# without the defect, larger is worse, and either can be slightly negative.
SPURIOUS_LABELS = {
    "s_seen": ("seen spuriousness s_seen\n(generalisation gap; lower is better, 0 = none)",
               "Seen classes: closer to training than to held-out samples"),
    "s_unseen": ("unseen spuriousness s_unseen\n(transfer gap; lower is better, 0 = none)",
                 "Unseen classes: worse match than on seen classes"),
}


def spuriousness_vs_fraction(long, path: str | Path, dataset: str = "") -> Path:
    """s_seen and s_unseen (METHOD.md 6.2 [PROPOSAL], docs/spuriousness.md) vs seen fraction,
    one panel each, with the 0 = "no spuriousness" reference line."""
    plt, _ = _plt()
    methods = _ordered(long["method"].unique())
    palette = _palette(methods)
    n_seeds = long["seed"].nunique()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for ax, (metric, (ylabel, title)) in zip(axes, SPURIOUS_LABELS.items()):
        _metric_vs_fraction(ax, long, metric, methods, palette, ylabel, title)
        ax.axhline(0.0, color="0.3", lw=1.0, ls=(0, (4, 3)), zorder=0)
        ax.title.set_fontsize(10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="method", loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize=8, title_fontsize=9)
    fig.suptitle("Spuriousness of generated features vs seen fraction"
                 f"{' on ' + dataset if dataset else ''} (line: mean over {n_seeds} "
                 f"seed{'s' * (n_seeds != 1)}, band: ±1 std; dashed: 0 = none; "
                 "docs/spuriousness.md)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(histories: Mapping[str, "object"], path: str | Path,
                    columns: Sequence[str] = ("loss_D", "loss_G")) -> Path:
    """``histories``: title -> per-epoch DataFrame (``epoch`` plus the loss columns)."""
    plt, _ = _plt()
    n = len(histories)
    cols = 2 if n == 4 else min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, frame) in zip(axes.flat, histories.items()):
        for col in columns:
            if col in frame:
                ax.plot(frame["epoch"], frame[col], marker="o", ms=3, label=col)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Training curves (critic loss_D, generator loss_G per epoch)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def pca_2d(fit_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Project ``fit_x`` and ``others`` onto the top-2 principal axes of ``fit_x`` (signs fixed
    so the largest-magnitude loading is positive: deterministic)."""
    fit_x = np.asarray(fit_x, np.float64)
    mean = fit_x.mean(0)
    _, _, vt = np.linalg.svd(fit_x - mean, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(1)])
    comps = comps * signs[:, None]
    return [(np.asarray(a, np.float64) - mean) @ comps.T for a in (fit_x, *others)]


def embedding(real_x: np.ndarray, real_y: np.ndarray,
              generated: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
              class_names: Mapping[int, str] | None = None, max_per_class: int = 150,
              seed: int = 0) -> Path:
    """Real test-unseen features vs each method's generated unseen features, one panel per
    method, in the PCA plane of the real features (shared axes)."""
    plt, sns = _plt()
    rng = np.random.default_rng(seed)

    def subsample(x, y):
        keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:max_per_class]
                               for c in np.unique(y)])
        keep.sort()
        return x[keep], y[keep]

    real_x, real_y = subsample(np.asarray(real_x), np.asarray(real_y))
    gens = {k: subsample(np.asarray(x), np.asarray(y)) for k, (x, y) in generated.items()}
    proj = pca_2d(real_x, *[x for x, _ in gens.values()])
    classes = np.unique(np.concatenate([real_y] + [y for _, y in gens.values()]))
    colours = dict(zip(classes.tolist(), sns.color_palette("tab10", len(classes))))
    allp = np.concatenate(proj)
    pad = 0.05 * (allp.max(0) - allp.min(0))
    lo, hi = allp.min(0) - pad, allp.max(0) + pad
    fig, axes = plt.subplots(1, len(gens), figsize=(5.6 * len(gens), 5.0), squeeze=False)
    for ax, (title, (_, gy)), p in zip(axes.flat, gens.items(), proj[1:]):
        for c in classes:
            name = (class_names or {}).get(int(c), f"class {int(c)}")
            r = proj[0][real_y == c]
            g = p[gy == c]
            ax.scatter(r[:, 0], r[:, 1], s=10, marker="o", color=colours[int(c)], alpha=0.35,
                       lw=0, label=f"{name} real")
            ax.scatter(g[:, 0], g[:, 1], s=16, marker="x", color=colours[int(c)], alpha=0.9,
                       lw=0.8, label=f"{name} generated")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PC 1 (of real test-unseen features)")
        ax.set_ylabel("PC 2")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="o real test-unseen, x generated", title_fontsize=8)
    fig.suptitle("Unseen classes: real test features vs generated features (2-D PCA)",
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, path)

