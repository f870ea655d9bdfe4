"""`ics bench`: training throughput of the ics loop against baselines measured in the same process.

Loops, all on the default model (BN paper Fig. 1 MLP, batch 60, plain SGD) and the same thread count:
  hand     a minimal hand-written loop over the same preloaded tensors (randperm batches)
  ics      the real Trainer loop, probes off (TensorBoard writing, evals, meters included)
  ics+probes  the real Trainer loop with probes at their default cadence
  ics+probes+ckpt  the same with a checkpoint (and record/series flush) every quarter of the loop;
           the per-checkpoint cost is also stated as a share of a run at the default cadence
  tutorial torchvision dataset + ToTensor/Normalize + DataLoader (the usual tutorial pipeline)
Each loop is timed `repeats` times, interleaved, and the best time is kept (noisy machines).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ics.config import Config, MLPConfig, MNISTConfig, ProbeConfig, ProbeOff, TrainerConfig
from ics.data import DataBundle, load_data
from ics.models import build_model
from ics.train import Trainer


def _cfg(steps: int, probes: bool, threads: int, root: Optional[str], checkpoint_every: int = 0) -> Config:
    return Config(data=MNISTConfig(root=root),
                  trainer=TrainerConfig(steps=steps, eval_every=steps, threads=threads, progress=False,
                                        checkpoint_every=checkpoint_every),
                  probe=ProbeConfig() if probes else ProbeOff())


def hand_loop(data: DataBundle, steps: int, seed: int = 0, batch: int = 60, lr: float = 0.5) -> float:
    """The baseline: nothing but forward, loss, backward, step. Returns seconds."""
    torch.manual_seed(seed)
    model = build_model(MLPConfig(), data.in_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y, n = data.x_train, data.y_train, data.x_train.shape[0]
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + batch]
        pos += batch
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def ics_loop(data: DataBundle, steps: int, probes: bool, threads: int, root: Optional[str],
             checkpoint_every: int = 0) -> float:
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(_cfg(steps, probes, threads, root, checkpoint_every), Path(d), data=data)
        t0 = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t0


def tutorial_loop(root: str, steps: int, seed: int = 0, batch: int = 60, lr: float = 0.5) -> float:
    """torchvision MNIST + ToTensor + Normalize + DataLoader, decoding every sample every epoch."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(root, train=True, download=False, transform=tf)
    torch.manual_seed(seed)
    model = build_model(MLPConfig(), (1, 28, 28), 10)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - t0


def _synthetic() -> DataBundle:
    gen = torch.Generator().manual_seed(0)
    return DataBundle(name="synthetic-mnist", x_train=torch.randn(60_000, 1, 28, 28, generator=gen),
                      y_train=torch.randint(0, 10, (60_000,), generator=gen),
                      x_test=torch.randn(10_000, 1, 28, 28, generator=gen),
                      y_test=torch.randint(0, 10, (10_000,), generator=gen),
                      classes=[str(i) for i in range(10)], mean=(0.0,), std=(1.0,), source="random tensors")


def run_bench(steps: int = 3000, data_root: Optional[str] = None, synthetic: bool = False, repeats: int = 3) -> Dict[str, float]:
    from rich.console import Console
    from rich.table import Table

    from ics.train.threads import choose_threads

    console = Console()
    data = _synthetic() if synthetic else load_data(MNISTConfig(root=data_root), "cpu")
    root = None if synthetic else str(Path(data.source).parent.parent)  # .../MNIST/raw -> root
    threads = choose_threads(build_model(MLPConfig(), data.in_shape, data.num_classes), data.in_shape,
                             data.num_classes, 60)
    torch.set_num_threads(threads)
    console.print(f"bench: {steps} steps per loop, best of {repeats}, {threads} thread(s), data: {data.source}")
    tut_steps = max(100, steps // 5)  # the tutorial pipeline is slow; steps/s is what is compared
    # checkpoints (with probes on: their state is part of it) every quarter of the loop, plus the final one
    ckpt_every = max(1, steps // 4)
    n_ckpt = len(range(ckpt_every, steps, ckpt_every)) + 1
    best = {k: float("inf") for k in ("hand", "ics", "ics+probes", "ics+probes+ckpt", "tutorial")}
    for _ in range(repeats):  # interleaved, so drifts in machine load hit every loop alike
        best["hand"] = min(best["hand"], hand_loop(data, steps))
        best["ics"] = min(best["ics"], ics_loop(data, steps, False, threads, root))
        best["ics+probes"] = min(best["ics+probes"], ics_loop(data, steps, True, threads, root))
        best["ics+probes+ckpt"] = min(best["ics+probes+ckpt"],
                                      ics_loop(data, steps, True, threads, root, checkpoint_every=ckpt_every))
        if root is not None:
            best["tutorial"] = min(best["tutorial"], tutorial_loop(root, tut_steps))
    sps = {k: (tut_steps if k == "tutorial" else steps) / v for k, v in best.items() if v != float("inf")}
    table = Table(title="training throughput (Fig. 1 MLP, batch 60, SGD)")
    for col in ("loop", "steps/s", "ratio", "vs"):
        table.add_column(col)
    ratios = {"hand": (1.0, "hand"), "ics": (sps["ics"] / sps["hand"], "hand (target >= 0.9)"),
              "ics+probes": (sps["ics+probes"] / sps["ics"], "ics without probes (target >= 0.9)")}
    ratios["ics+probes+ckpt"] = (sps["ics+probes+ckpt"] / sps["ics+probes"],
                                 f"ics+probes ({n_ckpt} checkpoints in {steps} steps)")
    if "tutorial" in sps:
        ratios["tutorial"] = (sps["tutorial"] / sps["hand"], "hand (expected well below 1)")
    for k, (r, vs) in ratios.items():
        table.add_row(k, f"{sps[k]:.0f}", f"{r:.3f}", vs)
    console.print(table)
    # the cost of one checkpoint, and what it is at the default cadence of a real run
    per_ckpt = max(0.0, best["ics+probes+ckpt"] - best["ics+probes"]) / n_ckpt
    default_every = TrainerConfig().checkpoint_every
    interval = default_every / sps["ics+probes"]
    console.print(f"checkpoint: {per_ckpt * 1e3:.1f} ms each; at the default trainer.checkpoint_every={default_every} "
                  f"(one every {interval:.1f} s of training here) that is {100 * per_ckpt / interval:.2f}% of the run "
                  "(target <= 2%)")
    ratios["checkpoint_overhead_default"] = (per_ckpt / interval, "")
    return {**{f"{k}_steps_per_sec": v for k, v in sps.items()}, **{f"ratio_{k}": r for k, (r, _) in ratios.items()}}
