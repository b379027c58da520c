"""Time DRG and DFG generator iterations (critic_steps critic steps + 1 generator step).

    python benchmarks/bench_train.py [--threads 2] [--iters 3] [--shape awa2|animals] [--device cpu]

Builds the real trainers (zerodiffpp.train_drg / train_dfg) from config dataclasses on random
PreparedData, runs one warm-up iteration and times ``--iters`` more.  Shapes:
  awa2     x_dim 2048, c_dim 2048, attr 85, hidden 4096, batch 64, 5 critic steps (paper scale)
  animals  x_dim 256, c_dim 256, attr 28, hidden 512, batch 64, 5 critic steps (params.yaml
           defaults); also prints the projected stage time for 20 epochs x 88 iterations
"""
from __future__ import annotations

import argparse
import time

import torch

from zerodiffpp.config import DFGConfig, DiffusionConfig, DRGConfig, RuntimeConfig
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer
from zerodiffpp.trainloop import random_prepared_data

SHAPES = {
    "awa2": dict(x_dim=2048, c_dim=2048, attr_dim=85, hidden=4096, n_train=23527, n_seen=40, n_unseen=10),
    "animals": dict(x_dim=256, c_dim=256, attr_dim=28, hidden=512, n_train=5600, n_seen=40, n_unseen=10),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_trainer(trainer, iters: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per generator iteration, after one warm-up iteration.  On a
    shared machine the CPU time / threads is a better guess of the uncontended wall time."""
    trainer.iteration()
    sync(trainer.device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        stats = trainer.iteration()
    float(stats["loss_G"].detach())     # one sync, like the end of an epoch
    sync(trainer.device)
    return (time.perf_counter() - wall) / iters, (time.process_time() - cpu) / iters


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--iters", type=int, default=3, help="timed generator iterations")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="awa2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--critic-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
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
    for name, cls, cfg in (("DRG", DRGTrainer, DRGConfig(**common)), ("DFG", DFGTrainer, DFGConfig(**common))):
        trainer = cls(data, cfg, DiffusionConfig(), seed=0, device=device, runtime=runtime)
        sec, cpu = time_trainer(trainer, args.iters)
        line = (f"{name}: {1.0 / sec:8.3f} it/s  {sec:8.4f} s/it  (process CPU {cpu:.4f} s/it "
                f"over {torch.get_num_threads()} threads)")
        if args.shape == "animals":
            line += f"  -> 20 epochs x {trainer.iters_per_epoch} it = {20 * trainer.iters_per_epoch * sec:.0f} s"
        print(line)
        del trainer


if __name__ == "__main__":
    main()
