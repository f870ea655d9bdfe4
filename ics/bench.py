"""`ics bench`: training throughput of the ics loop against baselines measured in the same process.

Loops, all on the default model (BN paper Fig. 1 MLP, batch 60, plain SGD) and the same thread count:
  hand     a minimal hand-written loop over the same preloaded tensors (randperm batches)
  ics      the real Trainer loop, probes off (TensorBoard writing, meters, evaluations at step 0 and
           the end included)
  ics+probes  the real Trainer loop with probes at their default cadence
  ics+probes+ckpt  the same with a checkpoint (and record/series flush) every quarter of the loop;
           the per-checkpoint cost is also stated as a share of a run at the default cadence
  tutorial torchvision dataset + ToTensor/Normalize + DataLoader (the usual tutorial pipeline)
Each loop is timed `repeats` times, interleaved, and the best time is kept (noisy machines).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ics.config import Config, ConfigError, MLPConfig, MNISTConfig, ProbeConfig, TrainerConfig
from ics.data import DataBundle, load_data
from ics.models import build_model
from ics.train import build_trainer


def _cfg(steps: int, probes: bool, threads: int, root: Optional[str], checkpoint_every: int = 0) -> Config:
    return Config(
        data=MNISTConfig(root=root),
        # evaluations at step 0 and the end only: the loop's overhead is what is compared
        # (the log-spaced early evaluations are a measurement choice, ~0.07 s each here)
        trainer=TrainerConfig(
            steps=steps,
            eval_every=steps,
            eval_log_points=0,
            threads=threads,
            progress=False,
            checkpoint_every=checkpoint_every,
        ),
        probe=ProbeConfig() if probes else ProbeConfig(enabled=False),
    )


def hand_loop(data: DataBundle, steps: int, seed: int = 0, batch: int = 60, lr: Optional[float] = None) -> float:
    """The baseline: nothing but forward, loss, backward, step (at the default lr). Returns seconds."""
    lr = Config().optim.lr if lr is None else lr
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
        idx = perm[pos : pos + batch]
        pos += batch
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def ics_loop(
    data: DataBundle, steps: int, probes: bool, threads: int, root: Optional[str], checkpoint_every: int = 0
) -> float:
    with tempfile.TemporaryDirectory() as d:
        trainer = build_trainer(_cfg(steps, probes, threads, root, checkpoint_every), Path(d), data=data)
        t0 = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t0


def tutorial_loop(root: str, steps: int, seed: int = 0, batch: int = 60, lr: Optional[float] = None) -> float:
    """torchvision MNIST + ToTensor + Normalize + DataLoader, decoding every sample every epoch."""
    lr = Config().optim.lr if lr is None else lr
    from ics.data import vision

    datasets, transforms = vision.load("torchvision.datasets"), vision.load("torchvision.transforms")

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
    return DataBundle(
        name="synthetic-mnist",
        x_train=torch.randn(60_000, 1, 28, 28, generator=gen),
        y_train=torch.randint(0, 10, (60_000,), generator=gen),
        x_test=torch.randn(10_000, 1, 28, 28, generator=gen),
        y_test=torch.randint(0, 10, (10_000,), generator=gen),
        classes=[str(i) for i in range(10)],
        mean=(0.0,),
        std=(1.0,),
        source="random tensors",
    )


def run_bench(
    steps: int = 3000, data_root: Optional[str] = None, synthetic: bool = False, repeats: int = 3, cnn_steps: int = 20
) -> Dict[str, float]:
    from rich.console import Console
    from rich.table import Table

    from ics.train.threads import choose_threads

    console = Console()
    data = _synthetic() if synthetic else load_data(MNISTConfig(root=data_root), "cpu")
    root = None if synthetic else str(Path(data.source).parent.parent)  # .../MNIST/raw -> root
    threads = choose_threads(
        build_model(MLPConfig(), data.in_shape, data.num_classes), data.in_shape, data.num_classes, 60
    )
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
        best["ics+probes+ckpt"] = min(
            best["ics+probes+ckpt"], ics_loop(data, steps, True, threads, root, checkpoint_every=ckpt_every)
        )
        if root is not None:
            best["tutorial"] = min(best["tutorial"], tutorial_loop(root, tut_steps))
    sps = {k: (tut_steps if k == "tutorial" else steps) / v for k, v in best.items() if v != float("inf")}
    table = Table(title="training throughput (Fig. 1 MLP, batch 60, SGD)")
    for col in ("loop", "steps/s", "ratio", "vs"):
        table.add_column(col)
    ratios = {
        "hand": (1.0, "hand"),
        "ics": (sps["ics"] / sps["hand"], "hand (target >= 0.9)"),
        "ics+probes": (sps["ics+probes"] / sps["ics"], "ics without probes (target >= 0.9)"),
    }
    ratios["ics+probes+ckpt"] = (
        sps["ics+probes+ckpt"] / sps["ics+probes"],
        f"ics+probes ({n_ckpt} checkpoints in {steps} steps)",
    )
    if "tutorial" in sps:
        ratios["tutorial"] = (sps["tutorial"] / sps["hand"], "hand (expected well below 1)")
    for k, (r, vs) in ratios.items():
        table.add_row(k, f"{sps[k]:.0f}", f"{r:.3f}", vs)
    console.print(table)
    # the cost of one checkpoint, and what it is at the default cadence of a real run
    per_ckpt = max(0.0, best["ics+probes+ckpt"] - best["ics+probes"]) / n_ckpt
    default_every = TrainerConfig().checkpoint_every
    interval = default_every / sps["ics+probes"]
    console.print(
        f"checkpoint: {per_ckpt * 1e3:.1f} ms each; at the default trainer.checkpoint_every={default_every} "
        f"(one every {interval:.1f} s of training here) that is {100 * per_ckpt / interval:.2f}% of the run "
        "(target <= 2%)"
    )
    ratios["checkpoint_overhead_default"] = (per_ckpt / interval, "")
    out = {**{f"{k}_steps_per_sec": v for k, v in sps.items()}, **{f"ratio_{k}": r for k, (r, _) in ratios.items()}}
    if cnn_steps:
        out.update(run_cnn_bench(cnn_steps, repeats, console))
    return out


# ----------------------------------------------------------------------------------------------
# the default CNN (CIFAR-10 shapes): memory format, the ics loop, evaluation, and the FLOP ceiling


def _cifar_like(n_train: int = 10_000, n_test: int = 10_000) -> DataBundle:
    gen = torch.Generator().manual_seed(0)
    return DataBundle(
        name="synthetic-cifar",
        x_train=torch.randn(n_train, 3, 32, 32, generator=gen),
        y_train=torch.randint(0, 10, (n_train,), generator=gen),
        x_test=torch.randn(n_test, 3, 32, 32, generator=gen),
        y_test=torch.randint(0, 10, (n_test,), generator=gen),
        classes=[str(i) for i in range(10)],
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        source="random tensors",
    )


def step_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one training step: 2 per multiply-add in the forward pass, and the backward pass
    counted as twice the forward (gradients w.r.t. inputs and weights)."""
    macs = [0]

    def hook(m, args, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            macs[0] += out.numel() * k
        elif isinstance(m, torch.nn.Linear):
            macs[0] += out.numel() * m.in_features

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return 3 * 2 * macs[0]


def peak_gflops(threads: int, size: int = 1024, reps: int = 10) -> float:
    """What this CPU does at its best: a large float32 matmul at the same thread count."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 * reps / best / 1e9


def hand_cnn(data: DataBundle, steps: int, channels_last: bool, batch: int = 128) -> float:
    from ics.config import CNNConfig

    torch.manual_seed(0)
    model = build_model(CNNConfig(), data.in_shape, data.num_classes)
    x_all = data.x_train
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for i in range(steps + 2):  # 2 warm-up steps
        if i == 2:
            t0 = time.perf_counter()
        idx = torch.randint(0, x_all.shape[0], (batch,), generator=gen)
        loss = F.cross_entropy(model(x_all[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def ics_cnn(data: DataBundle, steps: int, threads: int, channels_last) -> float:
    from ics.config import CNNConfig, SGDConfig

    cfg = Config(
        model=CNNConfig(),
        optim=SGDConfig(lr=0.05),
        probe=ProbeConfig(enabled=False),
        trainer=TrainerConfig(
            steps=steps,
            batch_size=128,
            eval_every=10 * steps,
            eval_log_points=0,
            threads=threads,
            progress=False,
            checkpoint_every=0,
            channels_last=channels_last,
        ),
    )
    from ics.train.hooks import Evaluation, default_hooks

    # no evaluations: the eval passes are timed on their own below
    trainer = build_trainer(cfg, None, data=data, hooks=[h for h in default_hooks() if not isinstance(h, Evaluation)])
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0


def eval_time(data: DataBundle, channels_last: bool, batch: int) -> float:
    from ics.config import CNNConfig
    from ics.models.evaluate import evaluate_model

    torch.manual_seed(0)
    model = build_model(CNNConfig(), data.in_shape, data.num_classes)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        data = dataclasses.replace(data, x_test=data.x_test.contiguous(memory_format=torch.channels_last))
    evaluate_model(model, data, batch)
    t0 = time.perf_counter()
    evaluate_model(model, data, batch)
    return time.perf_counter() - t0


def run_cnn_bench(steps: int, repeats: int, console) -> Dict[str, float]:
    from rich.table import Table

    from ics.config import CNNConfig
    from ics.train.threads import available_cores

    data = _cifar_like()
    threads = available_cores()  # the CNN is compute-bound: all cores (what threads=auto picks for it)
    torch.set_num_threads(threads)
    best = {k: float("inf") for k in ("hand", "hand NHWC", "ics NHWC")}
    for _ in range(repeats):
        best["hand"] = min(best["hand"], hand_cnn(data, steps, False))
        best["hand NHWC"] = min(best["hand NHWC"], hand_cnn(data, steps, True))
        best["ics NHWC"] = min(best["ics NHWC"], ics_cnn(data, steps, threads, True))
    sps = {k: steps / v for k, v in best.items()}
    model = build_model(CNNConfig(), data.in_shape, 10)
    gflop = step_flops(model, data.x_train[:128]) / 1e9
    peak = peak_gflops(threads)
    ceiling = peak / gflop
    table = Table(title=f"CNN on CIFAR-10 shapes (32-64-128 conv + 128 head, batch 128), {threads} threads")
    for col in ("loop", "steps/s", "ratio", "vs"):
        table.add_column(col)
    table.add_row("FLOP ceiling", f"{ceiling:.1f}", "1.000", f"{gflop:.2f} GFLOP/step at {peak:.0f} GFLOP/s (matmul)")
    table.add_row("hand", f"{sps['hand']:.1f}", f"{sps['hand'] / ceiling:.3f}", "ceiling")
    table.add_row("hand NHWC", f"{sps['hand NHWC']:.1f}", f"{sps['hand NHWC'] / sps['hand']:.3f}", "hand (NCHW)")
    table.add_row(
        "ics NHWC",
        f"{sps['ics NHWC']:.1f}",
        f"{sps['ics NHWC'] / sps['hand NHWC']:.3f}",
        f"hand NHWC; {sps['ics NHWC'] / ceiling:.3f} of the ceiling",
    )
    evals = {(cl, b): eval_time(data, cl, b) for cl in (False, True) for b in (500, 2000)}
    for (cl, b), t in evals.items():
        table.add_row(
            f"eval 10,000 {'NHWC' if cl else 'NCHW'} batch {b}",
            f"{t:.2f} s",
            f"{evals[(False, 2000)] / t:.2f}",
            "speed-up vs NCHW batch 2000",
        )
    console.print(table)
    return {
        "cnn_ceiling_steps_per_sec": ceiling,
        **{f"cnn_{k.replace(' ', '_')}_steps_per_sec": v for k, v in sps.items()},
        "cnn_eval_nchw_2000_sec": evals[(False, 2000)],
        "cnn_eval_nhwc_2000_sec": evals[(True, 2000)],
    }


# ----------------------------------------------------------------------------------------------
# what each instrument costs


def instrument_costs(model: str, steps: int, console, data_root: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Per instrument at its default cadence: ms per measurement (or per observed batch) and its
    share of a run, from a short run with only that instrument on, against the same run with none.
    model: "mlp" (the Fig. 1 MLP on MNIST, or MNIST-shaped random data) or "cnn" (the default CNN on
    CIFAR-10-shaped random data)."""
    from rich.table import Table

    from ics.config import CNNConfig, SGDConfig
    from ics.registry import INSTRUMENTS
    from ics.train.threads import available_cores

    if model == "mlp":
        data = load_data(MNISTConfig(root=data_root), "cpu") if data_root else _synthetic()
        base = Config(
            model=MLPConfig(), trainer=TrainerConfig(steps=steps, threads=1, progress=False, checkpoint_every=0)
        )
    else:
        data = _cifar_like(2_000, 2_000)
        base = Config(
            model=CNNConfig(),
            optim=SGDConfig(lr=0.05),
            trainer=TrainerConfig(
                steps=steps,
                batch_size=128,
                eval_every=steps,
                eval_log_points=0,
                threads=available_cores(),
                progress=False,
                checkpoint_every=0,
            ),
        )
    off = dataclasses.replace(base, **{k: dataclasses.replace(getattr(base, k), enabled=False) for k in INSTRUMENTS})
    t0 = time.perf_counter()
    build_trainer(off, None, data=data).fit()
    per_step = (time.perf_counter() - t0) / steps  # a training step, evaluations included
    table = Table(
        title=f"instrument costs: {model}, {steps} steps, default cadences "
        f"({per_step * 1e3:.2f} ms per training step with none)"
    )
    for col in ("instrument", "measurements", "ms each", "% of a run"):
        table.add_column(col)
    out = {}
    for key in INSTRUMENTS:
        section = dataclasses.replace(getattr(base, key), enabled=True)
        cfg = dataclasses.replace(off, **{key: section})
        try:
            trainer = build_trainer(cfg, None, data=data)
        except Exception as e:  # e.g. BN statistics on a model without BN
            table.add_row(key, "-", "-", f"n/a: {str(e).splitlines()[0][:60]}")
            continue
        summary = trainer.fit()
        inst = trainer.instruments[0]
        count = max(len(v) for v in inst.steps.values()) if inst.steps else 0
        spent = summary.instrument_time_sec.get(key, 0.0)
        ms = 1e3 * spent / max(count, 1)
        share = spent / (spent + per_step * steps)
        out[key] = {"measurements": count, "ms_each": ms, "share": share}
        table.add_row(key, str(count), f"{ms:.1f}", f"{100 * share:.1f}%")
    console.print(table)
    return out


def threads_under_load(steps: int, console, data_root: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """`trainer.threads` = 1, all cores and auto on the Fig. 1 MLP (the real Trainer loop, probes off),
    with the machine idle and with a busy process competing for a core (a spinning Python loop, like
    another job of a sweep). Returns {condition: {setting: steps/s}}; auto's pick is shown."""
    import subprocess
    import sys

    from rich.table import Table

    from ics.train.threads import available_cores

    data = load_data(MNISTConfig(root=data_root)) if data_root else _synthetic()
    cores = available_cores()
    settings = [1, cores, "auto"] if cores > 1 else [1, "auto"]
    out: Dict[str, Dict[str, float]] = {}
    picked: Dict[str, int] = {}
    for condition in ("idle", "a busy neighbour"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition != "idle" else None
        try:
            out[condition] = {}
            for setting in settings:
                with tempfile.TemporaryDirectory() as d:
                    trainer = build_trainer(_cfg(steps, False, setting, data_root), Path(d), data=data)
                    t0 = time.perf_counter()
                    trainer.fit()
                    out[condition][str(setting)] = steps / (time.perf_counter() - t0)
                    if setting == "auto":
                        picked[condition] = trainer.threads
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    table = Table(title=f"trainer.threads on the Fig. 1 MLP, {steps:,} steps (steps/s; {cores} cores)")
    table.add_column("machine")
    for setting in settings:
        table.add_column(f"threads={setting}", justify="right")
    table.add_column("auto / best fixed", justify="right")
    for condition, row in out.items():
        fixed = [v for k, v in row.items() if k != "auto"]
        table.add_row(
            condition,
            *[f"{row[str(s)]:,.0f}" + (f" (chose {picked[condition]})" if s == "auto" else "") for s in settings],
            f"{row['auto'] / max(fixed):.2f}x",
        )
    console.print(table)
    return out


# ----------------------------------------------------------------------------------------------
# the seeds of one config as one vectorised model (ics.train.ensemble) vs one after the other


def _members_alone(cfg: Config, seeds, data: DataBundle, steps: int) -> float:
    """The members trained one after the other, each as its single run steps (its own model,
    optimiser and sampler; forward, loss, backward, step). Returns seconds for all of them."""
    from ics.data.sampler import IndexSampler
    from ics.train.build import SAMPLER_SEED_OFFSET
    from ics.train.optim import build_optimizer

    device = data.x_train.device
    total = 0.0
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model(cfg.model, data.in_shape, data.out_features, seed=seed).to(device)
        opt = build_optimizer(model.parameters(), cfg.optim)
        sampler = IndexSampler(
            data.x_train.shape[0], cfg.trainer.batch_size, seed + SAMPLER_SEED_OFFSET, cfg.trainer.sampler, device
        )
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = sampler.next()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        total += time.perf_counter() - t0
    return total


def _members_together(cfg: Config, seeds, data: DataBundle, steps: int) -> float:
    from ics.train.ensemble import Ensemble

    ens = Ensemble(cfg, seeds, data)
    ens.train_step()  # the first vmapped step builds its plan: not part of a long run's rate
    _sync(data.x_train.device)
    t0 = time.perf_counter()
    ens.fit(steps + 1)
    _sync(data.x_train.device)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ensemble_sizes(text: str) -> List[int]:
    """`--ensemble 5,16` as member counts; anything else is one line naming the value."""
    counts = [p.strip() for p in text.split(",")]
    if not all(c.isdigit() and int(c) > 0 for c in counts):
        raise ConfigError(
            f"--ensemble {text!r} is invalid: allowed a comma-separated list of member counts > 0, e.g. 5,16"
        )
    return [int(c) for c in counts]


def ensemble_bench(
    sizes, steps: int, repeats: int, console, data_root: Optional[str] = None, device: str = "cpu"
) -> Dict[str, float]:
    """Member-steps/s of K seeds trained as one vectorised model vs the same K trained one after the
    other, for each K in `sizes`, on the Fig. 1 MLP with and without BN (batch 60, SGD), one CPU
    thread (or `device`), timed interleaved, best of `repeats`. Steps only: no evaluation in either."""
    from rich.table import Table

    from ics.train.device import device_name, resolve_device

    dev = resolve_device(device)
    torch.set_num_threads(1)
    data = load_data(MNISTConfig(root=data_root), dev) if data_root else _synthetic()
    data = dataclasses.replace(
        data, **{f: getattr(data, f).to(dev) for f in ("x_train", "y_train", "x_test", "y_test")}
    )
    models = {"Fig. 1 MLP, BN": MLPConfig(), "Fig. 1 MLP, no BN": MLPConfig(norm="none")}
    table = Table(
        title=f"seeds as one vectorised model vs one after the other: {steps} steps per member, best of "
        f"{repeats}, {'1 thread' if dev.type == 'cpu' else device_name(dev)}, data: {data.source}"
    )
    for col in ("model", "members", "alone member-steps/s", "together member-steps/s", "ratio"):
        table.add_column(col)
    out: Dict[str, float] = {}
    for label, model in models.items():
        cfg = Config(model=model, trainer=TrainerConfig(steps=steps, threads=1, device=str(dev), progress=False))
        for k in sizes:
            seeds = list(range(k))
            best = {"alone": float("inf"), "together": float("inf")}
            for _ in range(repeats):  # interleaved: drifts in machine load hit both alike
                best["alone"] = min(best["alone"], _members_alone(cfg, seeds, data, steps))
                best["together"] = min(best["together"], _members_together(cfg, seeds, data, steps))
            alone, together = k * steps / best["alone"], k * steps / best["together"]
            key = f"{'bn' if model.norm != 'none' else 'nobn'}_{k}"
            out[f"ensemble_{key}_alone"], out[f"ensemble_{key}_together"] = alone, together
            out[f"ensemble_{key}_ratio"] = together / alone
            table.add_row(label, str(k), f"{alone:.0f}", f"{together:.0f}", f"{together / alone:.2f}x")
    console.print(table)
    return out


def launcher_bench(
    members: int, steps: int, repeats: int, console, data_root: Optional[str], extra: Sequence[str] = ()
) -> Dict[str, float]:
    """Wall time of `ics run -m trainer.seed=0..K-1 [extra]` through the basic launcher (one job after
    another) and hydra/launcher=ensemble (the K seeds as one vectorised model), each a fresh `ics`
    process into a temporary sweep folder, interleaved so that drifts in machine load hit both alike,
    best of `repeats`. Whole commands: start-up, data, evaluation, instruments and files included.
    Also the largest difference in any job's final test accuracy between the two launchers."""
    import json
    import subprocess
    import sys

    from rich.table import Table

    if data_root is None:
        raise ConfigError("--launchers needs the real data: give --data-root or set ICS_DATA_ROOT")
    seeds = ",".join(str(s) for s in range(members))
    args = ["run", "-m", f"trainer.seed={seeds}", f"trainer.steps={steps}", "trainer.threads=1", *extra]
    env = {**os.environ, "ICS_DATA_ROOT": data_root}
    best = {"basic": float("inf"), "ensemble": float("inf")}
    finals: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ics-bench-") as tmp:
        for r in range(repeats):
            for launcher in best:
                sweep = Path(tmp) / f"{launcher}{r}"
                cmd = [
                    sys.executable,
                    "-m",
                    "ics_cli.main",
                    *args,
                    f"hydra/launcher={launcher}",
                    f"hydra.sweep.dir={sweep}",
                ]
                t0 = time.perf_counter()
                done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if done.returncode != 0:
                    tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                    raise ConfigError(f"--launchers: `ics {' '.join(args)} hydra/launcher={launcher}` failed: {tail}")
                best[launcher] = min(best[launcher], wall)
                jobs = sorted(sweep.glob("*_*/summary.json"), key=lambda p: int(p.parent.name.split("_")[0]))
                finals[launcher] = [float(json.loads(p.read_text())["final_test_acc"]) for p in jobs]
    gap = max(abs(a - b) for a, b in zip(finals["basic"], finals["ensemble"]))
    table = Table(
        title=f"`ics run -m trainer.seed=0..{members - 1} trainer.steps={steps} trainer.threads=1"
        f"{' ' + ' '.join(extra) if extra else ''}`: whole commands, best of {repeats}, interleaved"
    )
    for col in ("launcher", "wall s", "vs basic", "max |Δ final test acc|"):
        table.add_column(col)
    table.add_row("basic", f"{best['basic']:.1f}", "1.00x", "")
    table.add_row("ensemble", f"{best['ensemble']:.1f}", f"{best['basic'] / best['ensemble']:.2f}x", f"{gap:.4f}")
    console.print(table)
    return {"launcher_basic_sec": best["basic"], "launcher_ensemble_sec": best["ensemble"], "launcher_acc_gap": gap}
