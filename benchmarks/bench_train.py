"""Training and evaluation throughput at paper (AWA2) or default (animals) shapes, in ONE run.

    python benchmarks/bench_train.py [--threads 2] [--iters 3] [--shape awa2|animals]
                                     [--no-reference] [--no-eval] [--eval-syn 5400] ...

For DRG and DFG (real trainers from zerodiffpp.train_drg / train_dfg on random PreparedData),
for the default fused path and (unless --no-reference) the straightforward autograd reference
(``fused=False``), timed in ``--iters`` interleaved rounds (one fused iteration, one reference
iteration, one replay of each one's matmuls; best and median round reported), it prints
  * generator iterations/s (critic_steps critic steps + 1 generator step), wall and process CPU,
    and the RSS growth from building the trainer and running 3 iterations (training memory);
  * matmul FLOPs per iteration counted with torch.utils.flop_counter.FlopCounterMode (forward,
    backward and the gradient-penalty double backward: every aten mm/addmm/bmm that runs);
  * achieved GFLOP/s = FLOPs / time;
  * the machine's matmul GFLOP/s *at the model's shapes*, measured in the same process: every
    matmul of one training iteration is recorded (shape, strides, op) and each distinct one is
    re-timed in isolation; machine rate = FLOPs / sum(count x isolated time).  The ratio
    achieved / machine is the fraction of the matmul limit reached; 1 - ratio is everything else
    (optimizer, element-wise ops, RNG, allocator, Python);
  * the rate of a few fixed reference shapes, e.g. (64x2388)@(2388x4096).
Then (unless --no-eval) the time of one evaluation of all classifier input variants
(zerodiffpp.evaluation.evaluate_variants on random features: 40 seen / 10 unseen classes,
23,527 real seen train rows, 5,882 / 7,913 test-seen / test-unseen rows, eval.syn_per_class per
unseen class; the S block through a random 2048->4096->85 semantic decoder), and the peak RSS of the whole benchmark (replay operands and evaluation blocks included).

On a shared machine wall times are noisy; the CPU-time figures and the ratios (numerator and
denominator measured in the same process, interleaved) are the more stable numbers.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections import Counter

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from zerodiffpp.config import DFGConfig, DiffusionConfig, DRGConfig, EvalConfig, RuntimeConfig
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer
from zerodiffpp.trainloop import random_prepared_data

SHAPES = {
    "awa2": dict(x_dim=2048, c_dim=2048, attr_dim=85, hidden=4096, n_train=23527, n_seen=40, n_unseen=10),
    "animals": dict(x_dim=256, c_dim=256, attr_dim=28, hidden=512, n_train=5600, n_seen=40, n_unseen=10),
}
# Fixed shapes (M x K) @ (K x N) of the AWA2 model, for orientation.
REFERENCE_SHAPES = [(64, 2388, 4096), (64, 2048, 4096), (192, 2048, 4096), (64, 4096, 2048),
                    (4096, 192, 2048), (4096, 64, 2048)]
MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm")
AWA2_EVAL = dict(n_train=23527, n_test_seen=5882, n_test_unseen=7913)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _GlobalOnly:
    """Stand-in for FlopCounterMode's module tracker: its backward hooks break on
    ``autograd.grad`` w.r.t. a leaf (the gradient penalty); we only need the global total."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def count_flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return int(counter.get_total_flops())


class MatmulRecorder(TorchDispatchMode):
    """Records (op, args layout) of every matmul that runs, with a count per distinct layout."""

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in MATMUL_OPS:
            sig = tuple((tuple(a.shape), tuple(a.stride()), a.dtype) if isinstance(a, torch.Tensor)
                        else ("scalar", a) for a in args)
            self.calls[(name, sig, tuple(sorted(kwargs.items())))] += 1
        return func(*args, **(kwargs or {}))


def _matmul_flops(name: str, sig) -> int:
    shapes = [s[0] for s in sig if s[0] != "scalar"]
    if name in ("mm", "addmm"):
        a, b = shapes[-2], shapes[-1]
        return 2 * a[0] * a[1] * b[1]
    a, b = shapes[-2], shapes[-1]
    return 2 * a[0] * a[1] * a[2] * b[2]


def _operands(sig, device):
    args = []
    for s in sig:
        if s[0] == "scalar":
            args.append(s[1])
        else:
            shape, stride, dtype = s     # broadcast (stride-0) dims: allocate size 1, expand
            base = [1 if st == 0 else n for n, st in zip(shape, stride)]
            t = torch.empty_strided(base, [st or 1 for st in stride], dtype=dtype, device=device)
            args.append(t.normal_().expand(shape))
    return args


def _time_call(name, sig, kwargs, device=torch.device("cpu"), min_time=0.05, args=None):
    """Seconds (wall, CPU) per call of one recorded matmul layout, on random operands."""
    args = _operands(sig, device) if args is None else args
    op = getattr(torch.ops.aten, name)
    kw = dict(kwargs)
    for _ in range(2):
        op(*args, **kw)
    reps, wall = 0, 0.0
    sync(device)
    cpu0, t0 = time.process_time(), time.perf_counter()
    while wall < min_time or reps < 2:
        op(*args, **kw)
        reps += 1
        sync(device)
        wall = time.perf_counter() - t0
    return wall / reps, (time.process_time() - cpu0) / reps


class MachineRate:
    """Machine matmul time for exactly the matmuls of one iteration: each distinct recorded layout
    is timed in isolation (operands allocated once); ``measure()`` can be repeated between
    training iterations and the per-layout minimum / median is kept."""

    def __init__(self, calls: Counter, device):
        self.calls, self.device = calls, device
        self.operands = {key: _operands(key[1], device) for key in calls}
        self.flops = sum(count * _matmul_flops(name, sig) for (name, sig, _), count in calls.items())
        self.samples: dict = {key: [] for key in calls}

    def measure(self) -> None:
        for key in self.calls:
            name, sig, kwargs = key
            self.samples[key].append(_time_call(name, sig, kwargs, self.device, args=self.operands[key]))

    def seconds(self, pick) -> tuple[float, float]:
        """(wall, CPU) seconds of one iteration's matmuls, ``pick`` = min or median per layout."""
        wall = sum(count * pick([w for w, _ in self.samples[k]]) for k, count in self.calls.items())
        cpu = sum(count * pick([c for _, c in self.samples[k]]) for k, count in self.calls.items())
        return wall, cpu


def reference_shape_rates() -> list[str]:
    out = []
    for m, k, n in REFERENCE_SHAPES:
        w, _ = _time_call("mm", (((m, k), (k, 1), torch.float32), ((k, n), (n, 1), torch.float32)), (),
                          min_time=0.15)
        out.append(f"({m}x{k})@({k}x{n}) {2 * m * k * n / w / 1e9:.0f}")
    return out


def current_rss_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def time_iteration(trainer) -> tuple[float, float]:
    """(wall, process CPU) seconds of one generator iteration, synchronised at the end."""
    sync(trainer.device)
    wall, cpu = time.perf_counter(), time.process_time()
    stats = trainer.iteration()
    float(stats["loss_G"].detach())     # one host read, like the end of an epoch
    sync(trainer.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_stage(name, cls, cfg, data, runtime, device, rounds, with_reference):
    """Fused (and reference) trainers timed in interleaved rounds -- fused iteration, reference
    iteration, isolated matmul replays -- so that load from other processes hits all of them
    alike.  Reported: the best (min) and the median round."""
    impls = [True, False] if with_reference else [True]
    runs = {}
    for fused in impls:
        rss0 = current_rss_mib()
        trainer = cls(data, cfg, DiffusionConfig(), seed=0, device=device, runtime=runtime, fused=fused)
        trainer.iteration()                              # warm-up (allocator, BLAS buffers)
        flops = count_flops(trainer.iteration)
        rec = MatmulRecorder()
        with rec:
            trainer.iteration()
        rss = current_rss_mib() - rss0    # this trainer's memory after 3 iterations (weights, Adam
        #                                   state, grads, activations, allocator cache)
        runs[fused] = dict(trainer=trainer, flops=flops, machine=MachineRate(rec.calls, device),
                           times=[], calls=sum(rec.calls.values()), layouts=len(rec.calls), rss=rss)
    for _ in range(rounds):
        for fused in impls:
            runs[fused]["times"].append(time_iteration(runs[fused]["trainer"]))
        for fused in impls:
            runs[fused]["machine"].measure()
    results = []
    for fused in impls:
        r = runs[fused]
        res = dict(name=name, fused=fused, flops=r["flops"], calls=r["calls"], layouts=r["layouts"],
                   iters_per_epoch=r["trainer"].iters_per_epoch, rounds=rounds, rss=r["rss"])
        for tag, pick in (("best", min), ("median", statistics.median)):
            wall = pick([w for w, _ in r["times"]])
            cpu = pick([c for _, c in r["times"]])
            m_wall, m_cpu = r["machine"].seconds(pick)
            res[tag] = dict(wall=wall, cpu=cpu, achieved=r["flops"] / wall, achieved_cpu=r["flops"] / cpu,
                            machine=r["machine"].flops / m_wall, machine_cpu=r["machine"].flops / m_cpu)
        results.append(res)
    del runs
    return results


def print_stage(r, threads, shape):
    impl = "fused    " if r["fused"] else "reference"
    b, m = r["best"], r["median"]
    print(f"{r['name']} {impl}: {1.0 / b['wall']:7.4f} it/s  {b['wall']:8.3f} s/it wall best of {r['rounds']} "
          f"(median {m['wall']:.3f})  {b['cpu']:8.3f} s/it CPU ({threads} threads); "
          f"trainer RSS +{r['rss']:.0f} MiB")
    print(f"    matmul FLOPs/it {r['flops'] / 1e9:8.1f} GFLOP ({r['calls']} calls, {r['layouts']} layouts)"
          f"  achieved {b['achieved'] / 1e9:6.1f} GFLOP/s wall ({b['achieved_cpu'] / 1e9:5.1f} per CPU-s)")
    print(f"    machine matmul rate at these shapes {b['machine'] / 1e9:6.1f} GFLOP/s wall "
          f"({b['machine_cpu'] / 1e9:5.1f} per CPU-s)  ->  ratio {b['achieved'] / b['machine']:.1%} best, "
          f"{m['achieved'] / m['machine']:.1%} median, {b['achieved_cpu'] / b['machine_cpu']:.1%} CPU")
    if shape == "animals":
        print(f"    epoch = {r['iters_per_epoch']} it -> {r['iters_per_epoch'] * b['wall']:.1f} s/epoch "
              f"(median {r['iters_per_epoch'] * m['wall']:.1f} s)")


# --------------------------------------------------------------------------- evaluation


def bench_eval(args, shape) -> None:
    from zerodiffpp.evaluation import VARIANTS, build_blocks, evaluate_variants
    from zerodiffpp.networks import SemanticDecoder, init_weights

    cfg = EvalConfig(syn_per_class=args.eval_syn, classifier_epochs=args.eval_epochs,
                     classifier_batch=args.eval_batch)
    variants = tuple(args.eval_variants.split(",")) if args.eval_variants else VARIANTS
    rng = np.random.default_rng(0)
    seen, unseen = np.arange(shape["n_seen"]), np.arange(shape["n_seen"], shape["n_seen"] + shape["n_unseen"])
    x_dim, c_dim, d, hidden = shape["x_dim"], shape["c_dim"], shape["attr_dim"], shape["hidden"]

    def rows(n, classes):
        return (rng.random((n, x_dim), dtype=np.float32), rng.random((n, c_dim), dtype=np.float32),
                classes[rng.integers(0, len(classes), n)])

    n_syn = cfg.syn_per_class * len(unseen)
    tr, ts, tu = rows(AWA2_EVAL["n_train"], seen), rows(AWA2_EVAL["n_test_seen"], seen), \
        rows(AWA2_EVAL["n_test_unseen"], unseen)
    syn = rows(n_syn, unseen)
    syn = (syn[0], syn[1], np.repeat(unseen, cfg.syn_per_class))
    dec = init_weights(SemanticDecoder(x_dim, d, hidden, True), torch.Generator().manual_seed(0))
    print(f"eval: evaluate_variants({','.join(variants)}), {len(seen)} seen / {len(unseen)} unseen "
          f"classes, {len(tr[2])} real seen train + {n_syn} synthetic ({cfg.syn_per_class}/class) rows, "
          f"test {len(ts[2])} seen / {len(tu[2])} unseen; classifier epochs {cfg.classifier_epochs}, "
          f"batch {cfg.classifier_batch}, lr {cfg.classifier_lr}; S via Dec {x_dim}->{hidden}->{d}")
    t0, c0 = time.perf_counter(), time.process_time()
    blocks = [build_blocks(s[0], s[1], dec, variants) for s in (tr, syn, ts, tu)]
    t1, c1 = time.perf_counter(), time.process_time()
    evaluate_variants(blocks[0], tr[2], blocks[1], syn[2], blocks[2], ts[2], blocks[3], tu[2],
                      seen, unseen, cfg, torch.Generator().manual_seed(0), variants=variants)
    t2, c2 = time.perf_counter(), time.process_time()
    widths = {"V": x_dim, "S": d + hidden, "C": c_dim}
    n_gzsl, k_gzsl = len(tr[2]) + n_syn, len(seen) + len(unseen)
    cls_flops = sum(4 * cfg.classifier_epochs * sum(widths[b] for b in v) * (n_gzsl * k_gzsl + n_syn * len(unseen))
                    for v in variants)
    print(f"eval: inputs (Dec features) {t1 - t0:6.1f} s wall ({c1 - c0:.1f} s CPU); classifiers "
          f"{t2 - t1:6.1f} s wall ({c2 - c1:.1f} s CPU), ~{cls_flops / 1e12:.2f} TFLOP of classifier "
          f"matmuls -> {cls_flops / (t2 - t1) / 1e9:.0f} GFLOP/s; total {t2 - t0:6.1f} s")



def bench_classifier(args, shape) -> None:
    """One epoch of the widest (VCS) GZSL classifier, hand-written step vs the autograd step,
    in interleaved rounds on the same random rows: the in-run speed-up of classifier.py."""
    from zerodiffpp.classifier import train_classifier

    widths = (shape["x_dim"], shape["attr_dim"] + shape["hidden"], shape["c_dim"])   # V, S, C blocks
    width = sum(widths)
    n = AWA2_EVAL["n_train"] + args.eval_syn * shape["n_unseen"]
    k = shape["n_seen"] + shape["n_unseen"]
    g = torch.Generator().manual_seed(0)
    x = [torch.rand(n, w, generator=g) for w in widths]
    y = torch.randint(0, k, (n,), generator=g)
    flops = 4 * n * width * k
    impls = {
        "hand-written step": lambda: train_classifier(x, y, k, epochs=1, lr=1e-3, batch_size=args.eval_batch,
                                                      generator=torch.Generator().manual_seed(1)),
        "autograd step": lambda: train_classifier(x, y, k, epochs=1, lr=1e-3, batch_size=args.eval_batch,
                                                  generator=torch.Generator().manual_seed(1), autograd=True),
        "previous (per-block autograd)": lambda: _previous_classifier_epoch(x, y, k, args.eval_batch),
    }
    times = {name: [] for name in impls}
    for _ in range(max(1, args.iters)):
        for name, run in impls.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    best = {name: min(v) for name, v in times.items()}
    fast = best["hand-written step"]
    print(f"classifier: one epoch, {n} rows x {width} (VCS as 3 blocks) -> {k} classes, batch "
          f"{args.eval_batch}, {flops / 1e9:.0f} GFLOP, best of {args.iters} interleaved rounds: "
          + "; ".join(f"{name} {t:.2f} s ({flops / t / 1e9:.0f} GFLOP/s, {t / fast:.2f}x)"
                      for name, t in best.items()))


def _previous_classifier_epoch(blocks, y, k, batch_size):
    """The classifier loop as it was before the hand-written step (commit 405c728): per-block
    row gathers, one product per block against a column slice of W, autograd, Adam."""
    from zerodiffpp.classifier import SoftmaxClassifier

    g = torch.Generator().manual_seed(1)
    model = SoftmaxClassifier(sum(b.shape[1] for b in blocks), k, g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    perm = torch.randperm(len(y), generator=g)
    for start in range(0, len(y), batch_size):
        idx = perm[start:start + batch_size]
        loss = torch.nn.functional.nll_loss(model([b.index_select(0, idx) for b in blocks]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--iters", type=int, default=3, help="timed rounds (one iteration per implementation each)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="awa2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--critic-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stages", default="DRG,DFG", help="comma list of DRG, DFG, or none")
    parser.add_argument("--no-reference", action="store_true", help="skip the fused=False reference")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation timing")
    parser.add_argument("--eval-syn", type=int, default=5400, help="eval.syn_per_class (AWA2 DFG: 5400)")
    parser.add_argument("--eval-epochs", type=int, default=25, help="eval.classifier_epochs")
    parser.add_argument("--eval-batch", type=int, default=256, help="eval.classifier_batch")
    parser.add_argument("--eval-variants", default="", help="comma list (default: all)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    device = torch.device(args.device)
    data = random_prepared_data(n_train=shape["n_train"], x_dim=shape["x_dim"], c_dim=shape["c_dim"],
                                attr_dim=shape["attr_dim"], n_seen=shape["n_seen"],
                                n_unseen=shape["n_unseen"], n_test=8, seed=0)
    runtime = RuntimeConfig(device=args.device, threads=args.threads, precision=args.precision,
                            progress=False)
    common = dict(batch_size=args.batch_size, critic_steps=args.critic_steps, hidden_dim=shape["hidden"])
    print(f"bench_train: shape {args.shape} (x {shape['x_dim']}, c {shape['c_dim']}, attr "
          f"{shape['attr_dim']}, hidden {shape['hidden']}), batch {args.batch_size}, "
          f"{args.critic_steps} critic steps, device {device}, {args.precision}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("reference shapes, GFLOP/s wall: " + ", ".join(reference_shape_rates()))
    configs = {"DRG": (DRGTrainer, DRGConfig(**common)), "DFG": (DFGTrainer, DFGConfig(**common))}
    for name in [s for s in args.stages.split(",") if s and s != "none"]:
        cls, cfg = configs[name]
        results = bench_stage(name, cls, cfg, data, runtime, device, args.iters, not args.no_reference)
        for r in results:
            print_stage(r, args.threads, args.shape)
        if len(results) == 2:
            f, r = results
            print(f"    {name} fused vs reference: FLOPs {f['flops'] / r['flops']:.3f}x, speed-up "
                  f"{r['best']['wall'] / f['best']['wall']:.2f}x best / "
                  f"{r['median']['wall'] / f['median']['wall']:.2f}x median / "
                  f"{r['best']['cpu'] / f['best']['cpu']:.2f}x CPU")
            # MFU / HFU as in large-model training: model FLOPs = what the straightforward
            # implementation executes (the algorithm's count), hardware FLOPs = what runs.
            print(f"    {name} utilisation of the same-run matmul rate: MFU (model FLOPs "
                  f"{r['flops'] / 1e9:.1f} GFLOP/it over the fused time) "
                  f"{r['flops'] / f['best']['wall'] / f['best']['machine']:.1%} (above 100 % when skipped work "
                  f"is counted); HFU (executed "
                  f"{f['flops'] / 1e9:.1f} GFLOP/it) {f['best']['achieved'] / f['best']['machine']:.1%}")
    if not args.no_eval:
        bench_classifier(args, shape)
        bench_eval(args, shape)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of the whole benchmark process (maxrss): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
