"""Shared machinery of the two GAN training loops (DRG, DFG): batches, epochs, history,
NaN detection, checkpoint state and resume.  Subclasses define the networks, the optimisers and
``iteration()`` (critic steps + one generator step), see train_drg.py / train_dfg.py.

Randomness: every draw in training (batches, steps t, diffusion noise, z, GP alphas) comes from
one seeded ``torch.Generator`` on the training device, and the weights are initialised from a
separate CPU generator; the global RNGs are never used.  So the generator state is the complete
RNG state of a run (numpy is not used), which makes same-seed runs and resumed runs identical on
CPU.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import DiffusionConfig, RuntimeConfig
from .data.prepared import PreparedData
from .diffusion import DiffusionSchedule
from .io import write_csv
from .losses import gradient_penalty, interpolate
from .runtime import Interrupted, autocast, progress

CHECKPOINT_FORMAT = 1


class TrainingDivergedError(RuntimeError):
    """A training loss became NaN or infinite."""


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM stopped :func:`fit`; the checkpoint of the last completed epoch is on disk.
    ``epoch`` is that epoch (0: nothing saved).  Stages turn it into exit status 130."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


def data_fingerprint(data: PreparedData) -> str:
    """Short hash of the training arrays: a checkpoint is resumed only on the same data."""
    h = hashlib.sha256()
    for arr in (data.train_x, data.train_c, data.train_y, data.class_emb):
        arr = np.ascontiguousarray(arr)
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def embeddings_are_l2_normalised(class_emb: np.ndarray) -> bool:
    """Dec outputs are L2-normalised exactly when the class embeddings are (METHOD.md 2.4,
    ``class_embedding_norm``); read it off the data instead of a separate flag."""
    norms = np.linalg.norm(class_emb.astype(np.float64), axis=1)
    return bool(np.allclose(norms, 1.0, atol=1e-4))


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel on CPU/CUDA (same update rule, far fewer kernel launches)."""
    params = list(params)
    fused = bool(params) and params[0].device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def critic_pass(critic, cond_h, real, fake, generator):
    """Per-sample scores D(real), D(fake) (B,) and the un-weighted gradient penalty at interpolates
    of the first input (METHOD.md 3.1).  real and fake share the conditioning ``cond_h`` (see
    networks._Critic) and go through the critic as one stacked (2, B, .) batch."""
    both = critic.score(torch.stack([real, fake.to(real.dtype)]), cond_h).squeeze(-1)
    interp = interpolate(real, fake, generator)
    gp = gradient_penalty(critic.score(interp, cond_h), interp)
    return both[0], both[1], gp


def add_stats(sums: dict, stats: dict) -> None:
    """Accumulate a step's statistics on the device (no host sync in the hot loop)."""
    for key, value in stats.items():
        value = value.detach().float()
        sums[key] = sums[key] + value if key in sums else value


def run_iterations(iteration, n_iters: int, bar=None) -> dict:
    """``n_iters`` calls of ``iteration()``; their statistics summed on the device."""
    sums: dict[str, torch.Tensor] = {}
    for _ in range(n_iters):
        add_stats(sums, iteration())
        if bar is not None:
            bar.update(1)
    return sums


def run_epochs(trainer, n_epochs: int, desc: str, on_epoch_end=None) -> None:
    """``n_epochs`` calls of ``trainer.run_epoch`` under one progress bar (iterations, with the
    last epoch's losses); ``on_epoch_end(trainer)`` after each (checkpointing)."""
    with progress(total=n_epochs * trainer.iters_per_epoch, desc=desc,
                  enabled=trainer.runtime.progress) as bar:
        for _ in range(n_epochs):
            row = trainer.run_epoch(bar)
            bar.set_postfix(epoch=row["epoch"], loss_D=f"{row['loss_D']:.3g}",
                            loss_G=f"{row['loss_G']:.3g}")
            if on_epoch_end is not None:
                on_epoch_end(trainer)


def epoch_means(sums: dict, names, n_iters: int, who: str, epoch: int, hint: str) -> dict:
    """Per-epoch means of the accumulated statistics (the one host read per epoch);
    TrainingDivergedError naming the loss, the epoch and ``hint`` if one is not finite."""
    means = (torch.stack([sums[n] for n in names]).double() / n_iters).tolist()
    for name, value in zip(names, means):
        if not math.isfinite(value):
            raise TrainingDivergedError(f"{who} training diverged: loss '{name}' is {value} in "
                                        f"epoch {epoch} ({hint})")
    return dict(zip(names, means))


class WeightAverage:
    """Exponential moving average of one network's parameters (Polyak averaging of GAN
    generators, Yazici et al. 2019): a shadow copy that :meth:`update` moves towards the trained
    weights after every generator step.  The effective decay is ``min(decay, (1 + n) / (10 + n))``
    after n updates, so the early shadow does not stay anchored at the initialisation when a run
    has only a few hundred generator steps.  The shadow, not the last iterate, is what synthesis
    uses (synthesis.load_models); the critics keep training against the last iterate."""

    def __init__(self, net: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay={decay}: must be in (0, 1)")
        self.decay = float(decay)
        self.shadow = copy.deepcopy(net).requires_grad_(False)
        self.updates = 0

    def rate(self) -> float:
        """1 - the effective decay of the next update."""
        n = self.updates + 1
        return 1.0 - min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        weight = self.rate()
        for mine, theirs in zip(self.shadow.parameters(), net.parameters()):
            mine.lerp_(theirs.detach(), weight)
        for mine, theirs in zip(self.shadow.buffers(), net.buffers()):
            mine.copy_(theirs)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"weights": self.shadow.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state["weights"])
        self.updates = int(state["updates"])


def random_prepared_data(n_train: int = 256, x_dim: int = 32, c_dim: int = 32, attr_dim: int = 8,
                         n_seen: int = 6, n_unseen: int = 3, n_test: int = 16, seed: int = 0,
                         l2_normalise: bool = True) -> PreparedData:
    """Random PreparedData with [0, 1] features (for tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    n_classes = n_seen + n_unseen
    class_emb = rng.random((n_classes, attr_dim)).astype(np.float32)
    if l2_normalise:
        class_emb /= np.linalg.norm(class_emb, axis=1, keepdims=True)
    seen = np.arange(n_seen, dtype=np.int64)
    unseen = np.arange(n_seen, n_classes, dtype=np.int64)

    def split(n, classes):
        y = classes[rng.integers(0, len(classes), n)]
        return (rng.random((n, x_dim)).astype(np.float32), rng.random((n, c_dim)).astype(np.float32), y)

    tr, ts, tu = split(n_train, seen), split(n_test, seen), split(n_test, unseen)
    return PreparedData(train_x=tr[0], train_c=tr[1], train_y=tr[2], test_seen_x=ts[0],
                        test_seen_c=ts[1], test_seen_y=ts[2], test_unseen_x=tu[0],
                        test_unseen_c=tu[1], test_unseen_y=tu[2], class_emb=class_emb,
                        seen_classes=seen, unseen_classes=unseen,
                        train_subset=np.arange(1, n_train + 1, dtype=np.int64))


class Resumable:
    """What :func:`fit` needs of a trainer besides ``stage``, ``epoch``, ``train(epochs,
    on_epoch_end)`` and ``meta()``: the resume check (everything in ``meta()`` but progress must
    match), the code version, the checkpoint state (networks ``nets``, optimisers
    ``optimizers``, the training ``generator``, the history, plus :meth:`extra_state`) and the
    per-epoch save.  Shared by the ZeroDiff loops (:class:`TrainLoop`) and the baselines."""

    stage = "GAN"
    # Config fields that may differ between a checkpoint and a run that resumes it.
    resumable_differences: tuple[str, ...] = ("epochs",)
    # Meta entries that record progress or results, not the run's definition.
    progress_meta: tuple[str, ...] = ("epochs_done", "torch_version")
    # Modules of this package, besides the trainer's own class hierarchy, whose source defines
    # a run (names, imported when hashed: no import cycles).
    code_dependencies: tuple[str, ...] = ()
    nets: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    # Weight averages of some of ``nets`` (name -> WeightAverage; empty = none kept).
    averages: dict[str, WeightAverage] = {}
    generator: torch.Generator
    epoch: int
    history: list[dict]

    def code_version(self) -> str:
        """Short hash of the source files that define this training run (this module, the
        trainer's class hierarchy and ``code_dependencies``).  Part of the resume signature: with a
        persistent DVC output the old checkpoint survives a code change, and changed code must
        not continue (or silently reuse) a run made by the old code."""
        cls = type(self)
        cached = cls.__dict__.get("_code_version")
        if cached is not None:
            return cached
        modules = {sys.modules[__name__]}
        modules |= {importlib.import_module(f"{__package__}.{name}") for name in cls.code_dependencies}
        modules |= {sys.modules[c.__module__] for c in cls.__mro__ if issubclass(c, Resumable)}
        h = hashlib.sha256()
        for path in sorted(Path(m.__file__).resolve() for m in modules):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        version = h.hexdigest()[:16]
        cls._code_version = version
        return version

    def resume_signature(self, meta: dict) -> dict:
        skip = set(self.progress_meta) | {f"cfg_{k}" for k in self.resumable_differences}
        return {k: v for k, v in meta.items() if k not in skip}

    def can_resume(self, checkpoint: dict, epochs: int) -> tuple[bool, str]:
        """A checkpoint is resumed when everything but the epoch count matches and it has not
        trained past ``epochs``."""
        try:
            theirs = dict(checkpoint["meta"])
        except (KeyError, TypeError):
            return False, "no meta in checkpoint"
        mine = self.resume_signature(self.meta())
        diff = sorted(k for k in set(mine) | set(self.resume_signature(theirs))
                      if mine.get(k) != theirs.get(k))
        if diff:
            return False, f"configuration differs ({', '.join(diff[:5])})"
        if int(theirs.get("epochs_done", 0)) > epochs:
            return False, f"checkpoint has {theirs['epochs_done']} epochs, more than the {epochs} asked for"
        return True, f"resuming after epoch {theirs['epochs_done']}"

    def extra_state(self) -> dict:
        """Tensors beside the generator's state that a resume needs (none by default)."""
        return {}

    def state_dict(self) -> dict:
        """Plain containers and tensors only (loads with ``weights_only=True``)."""
        columns = list(self.history[0]) if self.history else []
        state = {
            "meta": self.meta(),
            "models": {name: net.state_dict() for name, net in self.nets.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "state": {"generator": self.generator.get_state(), **self.extra_state()},
            "history": {col: [row[col] for row in self.history] for col in columns},
        }
        if self.averages:
            state["averaged"] = {name: avg.state_dict() for name, avg in self.averages.items()}
        return state

    def load_state_dict(self, checkpoint: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(checkpoint["models"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(checkpoint["optimizers"][name])
        for name, avg in self.averages.items():
            avg.load_state_dict(checkpoint["averaged"][name])
        self.generator.set_state(checkpoint["state"]["generator"].cpu())
        self.epoch = int(checkpoint["meta"]["epochs_done"])
        hist = checkpoint.get("history", {})
        n = len(next(iter(hist.values()))) if hist else 0
        self.history = [{col: values[i] for col, values in hist.items()} for i in range(n)]

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)

    def save(self, checkpoint_path: str | Path, history_path: str | Path | None = None) -> None:
        """Atomic checkpoint (+ history CSV) -- called after every epoch."""
        from .io import save_checkpoint

        save_checkpoint(checkpoint_path, self.state_dict())
        if history_path is not None:
            write_csv(history_path, self.history_frame())


class TrainLoop(Resumable):
    """Base class: subclasses set ``stage``, ``network_names``, build ``self.nets`` /
    ``self.optimizers`` / ``self.gp`` and implement ``iteration() -> dict[str, Tensor]``."""

    network_names: tuple[str, ...] = ()
    # The generator whose weight average (cfg.ema_decay > 0) synthesis uses.
    averaged_network: str = ""
    progress_meta = ("epochs_done", "lambda_gp", "torch_version")
    code_dependencies = ("diffusion", "losses", "networks")
    # Preferred order of the history columns (after "epoch"; "lambda" and "seconds" come last).
    column_order = ("loss_D", "loss_G", "W_x0", "W_xt", "W_xc", "W_r0", "W_rt", "gp", "loss_ml",
                    "loss_dec", "loss_vae", "adv_G", "loss_rec", "dec_mse_fake")

    def __init__(self, data: PreparedData, cfg, diffusion: DiffusionConfig, *, seed: int,
                 device="cpu", runtime: RuntimeConfig | None = None):
        self.cfg = cfg
        self.diffusion_cfg = diffusion
        self.runtime = runtime or RuntimeConfig(device="cpu", progress=False)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.schedule = DiffusionSchedule.from_config(diffusion).to(self.device)
        self.n_train = int(len(data.train_y))
        self.batch_size = int(cfg.batch_size)
        # One "epoch" = ceil(n_train / B) generator iterations (METHOD.md 4.1).
        self.iters_per_epoch = math.ceil(self.n_train / self.batch_size)
        self.fingerprint = data_fingerprint(data)
        self.normalize_dec = embeddings_are_l2_normalised(data.class_emb)
        # Training data lives on the device; only seen training samples are ever read.
        self.train_y = torch.as_tensor(data.train_y, dtype=torch.int64, device=self.device)
        self.class_emb = torch.as_tensor(data.class_emb, dtype=torch.float32, device=self.device)
        # Weights from a CPU generator (seed), training draws from a device generator (seed + 1).
        self.init_generator = torch.Generator().manual_seed(self.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.epoch = 0
        self.history: list[dict] = []
        self.nets: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.averages: dict[str, WeightAverage] = {}

    def start_averaging(self) -> None:
        """Subclasses call this once ``self.nets`` is built."""
        decay = float(getattr(self.cfg, "ema_decay", 0.0))
        if decay > 0:
            name = self.averaged_network
            self.averages = {name: WeightAverage(self.nets[name], decay)}

    # ------------------------------------------------------------------ helpers

    def autocast(self):
        return autocast(self.runtime, self.device)

    def sample_indices(self) -> torch.Tensor:
        """randperm(n_train)[:B]: an i.i.d. batch without replacement (METHOD.md 1.2 item 9)."""
        return torch.randperm(self.n_train, generator=self.generator, device=self.device)[: self.batch_size]

    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def iteration(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def averaged_iteration(self) -> dict[str, torch.Tensor]:
        """:meth:`iteration`, then the weight averages follow the generator step."""
        stats = self.iteration()
        for name, avg in self.averages.items():
            avg.update(self.nets[name])
        return stats

    # ------------------------------------------------------------------ epochs

    def run_epoch(self, bar=None) -> dict:
        """ceil(n_train / B) iterations; losses are accumulated on the device and read back once."""
        start = time.perf_counter()
        sums = run_iterations(self.averaged_iteration, self.iters_per_epoch, bar)
        names = sorted(sums, key=lambda n: (self.column_order.index(n) if n in self.column_order
                                             else len(self.column_order), n))
        epoch = self.epoch + 1
        means = epoch_means(sums, names, self.iters_per_epoch, self.stage, epoch,
                            f"lower the learning rate {self.stage.lower()}.lr or check the input data")
        row = {"epoch": epoch, **means, "lambda": float(self.gp.value.item()),
               "seconds": time.perf_counter() - start}
        self.epoch = epoch
        self.history.append(row)
        return row

    def train(self, epochs: int, on_epoch_end=None) -> list[dict]:
        """Train until ``epochs`` epochs are done in total (continuing after a resume)."""
        run_epochs(self, max(0, epochs - self.epoch), self.stage, on_epoch_end)
        return self.history

    # ------------------------------------------------------------------ state

    def meta(self) -> dict:
        """Plain ints/floats/strs/bools: dims, config, schedule, progress (layout documented in
        the train_drg.py module docstring)."""
        meta = {"format": CHECKPOINT_FORMAT, "stage": self.stage, **self.dims.to_meta(),
                "normalize_dec": self.normalize_dec,
                "n_steps": self.diffusion_cfg.n_steps, "beta_min": self.diffusion_cfg.beta_min,
                "beta_max": self.diffusion_cfg.beta_max,
                "seed": self.seed, "n_train": self.n_train, "data_fingerprint": self.fingerprint,
                "iters_per_epoch": self.iters_per_epoch, "device_type": self.device.type,
                "precision": self.runtime.precision,
                "epochs_done": self.epoch, "lambda_gp": float(self.gp.value.item()),
                "torch_version": str(torch.__version__), "code_version": self.code_version()}
        for key, value in vars(self.cfg).items():
            meta[f"cfg_{key}"] = value
        return meta

    def extra_state(self) -> dict:
        return {"lambda_gp": self.gp.value.detach().cpu()}

    def load_state_dict(self, checkpoint: dict) -> None:
        super().load_state_dict(checkpoint)
        self.gp.value = checkpoint["state"]["lambda_gp"].to(self.device, torch.float64)


class _StopSignals:
    """While active (main thread only), SIGINT and SIGTERM raise ``KeyboardInterrupt`` -- SIGTERM
    (``kill``, a CI timeout, a batch scheduler) would otherwise end the process on the spot.
    Inside :meth:`critical` (checkpoint + history writes) the signal is held back until the
    section is complete, so the files on disk always describe the same finished epoch."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self._previous: dict = {}
        self._depth = 0
        self._pending = None

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # not allowed here: keep the default behaviour
                    pass
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
        return False

    def _handle(self, signum, frame):
        if self._depth:
            self._pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def critical(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending is not None:
            signum, self._pending = self._pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)


def fit(trainer: Resumable, epochs: int, checkpoint_path: str | Path, history_path: str | Path,
        log=print) -> Resumable:
    """Train ``trainer`` to ``epochs`` epochs, resuming from ``checkpoint_path`` when it holds a
    compatible earlier state; checkpoint + history CSV are rewritten (atomically) after each epoch.

    A checkpoint that cannot be read, was made with another configuration, data or code, or has
    more epochs than asked for is ignored (logged; training starts from scratch and replaces it).
    SIGINT/SIGTERM abandon the epoch in progress and raise :class:`TrainingInterrupted` naming the
    last epoch on disk; rerunning resumes from it and ends with the same weights and history as
    an uninterrupted run (same seed, CPU)."""
    from .io import DataError, load_checkpoint

    checkpoint_path = Path(checkpoint_path)
    if checkpoint_path.exists():
        try:
            checkpoint = load_checkpoint(checkpoint_path)
            ok, why = trainer.can_resume(checkpoint, epochs)
        except DataError as exc:
            ok, why = False, str(exc)
        except (KeyError, TypeError, ValueError) as exc:   # a meta of the wrong shape
            ok, why = False, f"unusable meta ({type(exc).__name__}: {exc})"
        if ok:
            fresh = copy.deepcopy(trainer.state_dict())
            try:
                trainer.load_state_dict(checkpoint)
                log(f"{trainer.stage}: {checkpoint_path}: {why}")
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
                trainer.load_state_dict(fresh)   # back to the untouched initial state
                first = (str(exc).strip().splitlines() or [""])[0]
                ok, why = False, f"cannot restore it ({type(exc).__name__}: {first})"
        if not ok:
            log(f"{trainer.stage}: not resuming {checkpoint_path}: {why}; training from scratch")
    saved = trainer.epoch   # the last epoch whose checkpoint is on disk (0: none)

    with _StopSignals() as stop:
        def save(tr: Resumable) -> None:
            nonlocal saved
            with stop.critical():
                tr.save(checkpoint_path, history_path)
                saved = tr.epoch

        try:
            start_epoch = trainer.epoch
            trainer.train(epochs, on_epoch_end=save)
            if trainer.epoch == start_epoch:   # nothing left to train: still make sure outputs exist
                save(trainer)
        except KeyboardInterrupt as exc:
            how = f" by {exc.args[0]}" if exc.args else ""
            if saved:
                message = (f"{trainer.stage} training interrupted{how} after epoch {saved} of "
                           f"{epochs}; rerun to resume from {checkpoint_path}")
            else:
                message = (f"{trainer.stage} training interrupted{how} in epoch 1, before any "
                           "checkpoint was written; rerun to start again")
            raise TrainingInterrupted(message, saved) from None
    return trainer


def resume_path_for(output_path: str | Path) -> Path:
    """Where per-epoch checkpoints live while a stage trains: beside the output directory
    (``runs/drg`` -> ``runs/drg.resume/model.pt``), because ``dvc repro`` deletes a stage's
    outputs before rerunning it and would otherwise throw the resumable state away."""
    output_path = Path(output_path)
    return output_path.parent.with_name(output_path.parent.name + ".resume") / output_path.name


def fit_to_output(trainer: Resumable, epochs: int, output_path: str | Path,
                  history_path: str | Path, log=print) -> TrainLoop:
    """:func:`fit` with its per-epoch checkpoints in :func:`resume_path_for` ``(output_path)``;
    once training completes the final checkpoint is moved to ``output_path`` (atomically) and
    the resume folder removed, so DVC caches only finished models and keeps its run-cache."""
    import shutil

    from .io import atomic_path

    output_path = Path(output_path)
    resume_path = resume_path_for(output_path)
    fit(trainer, epochs, resume_path, history_path, log=log)
    with atomic_path(output_path) as tmp:
        shutil.copyfile(resume_path, tmp)
    shutil.rmtree(resume_path.parent, ignore_errors=True)
    return trainer
