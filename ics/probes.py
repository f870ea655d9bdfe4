"""Layer-input distribution probes (Ioffe & Szegedy 2015, §2 and Fig. 1 b/c, extended to every layer).

Every `probe.every` steps (and at step 0, before any update) a fixed probe set is run through the
model under no_grad; forward hooks on the selected probe points capture each point's input, and
percentiles, moments, saturation and drift (ics.drift) are computed on the device. One host sync per
snapshot. The model is left exactly as it was found: parameters, BN running statistics and counters,
train/eval mode, RNG states, and no hooks behind.
"""
from __future__ import annotations

import fnmatch
import json
import zlib
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ics.config import ConfigError, ProbeConfig
from ics.drift import as_units, quantiles_sorted, safe_std, saturation, sort_rows, w1_sorted

MAX_SAMPLES = 4096  # per unit; conv channels have batch*H*W samples, a fixed random subset is kept


def write_scalars(writer, values: Dict[str, float], step: int) -> None:
    """All of a snapshot's scalars in one event (one queue hand-off instead of ~100 add_scalar
    calls); TensorBoard reads each value as its own tag, exactly as if written one by one."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard.summary import scalar

    if getattr(writer, "file_writer", None) is None:  # any writer-like object with add_scalar
        for tag, v in values.items():
            writer.add_scalar(tag, v, step)
        return
    merged = Summary(value=[scalar(tag, v).value[0] for tag, v in values.items()])
    writer.file_writer.add_summary(merged, step)


def select_points(model: nn.Module, patterns) -> Dict[str, tuple]:
    points = model.probe_points()
    chosen = {n: p for n, p in points.items() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)}
    if not chosen:
        raise ConfigError(f"probe.points={list(patterns)!r} matches no probe point; available: {', '.join(points)}")
    return chosen


class Capture:
    """Forward hooks that record what flows through the given points; attach()/detach() symmetric."""

    def __init__(self, points: Dict[str, tuple], only_training_forward: bool = False):
        self.points, self.only_training = points, only_training_forward
        self.values: Dict[str, torch.Tensor] = {}
        self.handles: List = []

    def _store(self, name: str, module: nn.Module, value: torch.Tensor) -> None:
        if self.only_training and not (module.training and torch.is_grad_enabled()):
            return  # skip evaluation and probe passes
        self.values[name] = value.detach()

    def attach(self) -> "Capture":
        for name, (module, kind) in self.points.items():
            if kind == "input":
                h = module.register_forward_pre_hook(lambda m, args, n=name: self._store(n, m, args[0]))
            else:
                h = module.register_forward_hook(lambda m, args, out, n=name: self._store(n, m, out))
            self.handles.append(h)
        return self

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


@contextmanager
def probe_mode(model: nn.Module, bn_mode: str):
    """Run the model for measurement only. batch: BN normalises with the probe set's own batch
    statistics (what the next layer sees in training) without touching running stats or counters;
    eval: BN uses its running statistics."""
    was_training = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracked = [bn.track_running_stats for bn in bns]
    try:
        if bn_mode == "batch":
            model.train()
            for bn in bns:
                bn.track_running_stats = False  # train mode + no tracking = batch stats, no buffer update
        else:
            model.eval()
        with torch.no_grad():
            yield
    finally:
        for bn, t in zip(bns, tracked):
            bn.track_running_stats = t
        for m, t in was_training.items():
            m.training = t


class PointState:
    """Reference/previous snapshots of one probe point (sorted sample subset, per-unit moments)."""

    def __init__(self, name: str, activation: Optional[str], n_units: int, n_samples: int, cfg: ProbeConfig, device):
        self.name, self.activation = name, activation
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + zlib.crc32(name.encode()))
        self.units = torch.randperm(n_units, generator=gen)[:min(cfg.units, n_units)].sort().values.tolist()
        self.cols = None if n_samples <= MAX_SAMPLES else \
            torch.randperm(n_samples, generator=gen)[:MAX_SAMPLES].sort().values.to(device)
        self.ref = self.prev = None  # (sorted, mean, std)
        self.path = torch.zeros(n_units, device=device)

    def state_dict(self) -> dict:
        cpu = lambda t: None if t is None else tuple(x.cpu() for x in t)  # noqa: E731
        return {"units": self.units, "cols": None if self.cols is None else self.cols.cpu(),
                "ref": cpu(self.ref), "prev": cpu(self.prev), "path": self.path.detach().cpu().clone()}

    def load_state_dict(self, s: dict, device) -> None:
        dev = lambda t: None if t is None else tuple(x.to(device) for x in t)  # noqa: E731
        self.units, self.ref, self.prev = s["units"], dev(s["ref"]), dev(s["prev"])
        self.cols = None if s["cols"] is None else s["cols"].to(device)
        self.path = s["path"].to(device)


class ProbeSuite:
    """Probes on a fixed probe set. `measure(step)` logs to TensorBoard and keeps a series per tag."""

    def __init__(self, cfg: ProbeConfig, model: nn.Module, x_probe: torch.Tensor, activation: str, writer=None):
        self.cfg, self.model, self.x, self.activation, self.writer = cfg, model, x_probe, activation, writer
        self.points = select_points(model, cfg.points)
        self.qs = [q / 100 for q in cfg.percentiles]
        self.qnames = [f"p{q:g}" for q in cfg.percentiles]
        self.state: Dict[str, PointState] = {}
        self.steps: List[int] = []
        self.series: Dict[str, List[float]] = defaultdict(list)
        self.train_capture = Capture(self.points, only_training_forward=True).attach() if cfg.on_train_batch else None
        self.train_steps: List[int] = []  # steps of the probe_train/ series
        self._layout_written = False

    def due(self, step: int) -> bool:
        if self.train_capture is not None:
            self._log_train_batch(step)
        return step % self.cfg.every == 0

    def _act_of(self, name: str) -> Optional[str]:
        return self.activation if name.endswith(".pre_act") else None

    # --- one snapshot -----------------------------------------------------------------------------
    def measure(self, step: int) -> Dict[str, float]:
        # the step-0 reference is always taken with batch statistics: at step 0 the running
        # statistics are PyTorch's defaults (mean 0, var 1) and would not normalise at all
        mode = "batch" if step == 0 else self.cfg.bn_mode
        cap = Capture(self.points).attach()
        try:
            with probe_mode(self.model, mode):
                self.model(self.x)
        finally:
            cap.detach()
        names, tensors, hist = [], [], {}
        for name, act in cap.values.items():
            point_names, flat, h = self._point_stats(name, as_units(act.float()))
            names += point_names
            tensors.append(flat)
            hist[name] = h
        values = dict(zip(names, torch.cat(tensors).tolist()))  # the one host sync per snapshot
        self._record(step, values, hist)
        return values

    def _point_stats(self, name: str, u: torch.Tensor):
        """All statistics of one point as (tag names, one flat tensor, histogram sample)."""
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = PointState(name, self._act_of(name), u.shape[0], u.shape[1], self.cfg, u.device)
        sub = u if st.cols is None else u[:, st.cols]
        s = sort_rows(sub)
        mu, sd = u.mean(dim=1), u.std(dim=1, unbiased=False)
        if st.ref is None:
            st.ref = st.prev = (s, mu, sd)
        ref_s, ref_mu, ref_sd = st.ref
        unit = safe_std(ref_sd)
        q = quantiles_sorted(s, self.qs)  # (C, P)
        w1_prev = w1_sorted(s, st.prev[0]) / unit
        st.path = st.path + w1_prev  # not in place: an earlier state_dict stays a snapshot
        drift = torch.stack([w1_sorted(s, ref_s) / unit, w1_prev, ((mu - ref_mu) / unit).abs(),
                             torch.log(sd.clamp_min(1e-12) / unit).abs(), st.path])  # (5, C)
        st.prev = (s, mu, sd)
        sat = saturation(u, st.activation) if st.activation else {}
        parts = [q.mean(dim=0), q[st.units].flatten(),
                 torch.stack([mu.mean(), mu.std(unbiased=False), sd.mean(), sd.std(unbiased=False)]),
                 torch.stack(list(sat.values())) if sat else q.new_zeros(0),
                 torch.stack([drift.mean(dim=1), drift.amax(dim=1)], dim=1).flatten()]
        return self._names(name, st, list(sat)), torch.cat([p.float() for p in parts]), sub

    def _names(self, name: str, st: "PointState", sat_keys: List[str]) -> List[str]:
        """Tag names in the order _point_stats lays the values out."""
        names = [f"probe/{name}/{qn}" for qn in self.qnames]
        names += [f"probe/{name}/unit{k}/{qn}" for k in st.units for qn in self.qnames]
        names += [f"probe/{name}/{m}" for m in ("mean", "mean_spread", "std", "std_spread")]
        names += [f"probe/{name}/{k}" for k in sat_keys]
        for metric in ("w1_ref", "w1_prev", "shift_ref", "log_std_ratio", "path"):
            names += [f"drift/{name}/{metric}", f"drift/{name}/{metric}_max"]
        return names

    def _record(self, step: int, values: Dict[str, float], hist: Dict[str, torch.Tensor]) -> None:
        self.steps.append(step)
        for tag, v in values.items():
            self.series[tag].append(v)
        if self.writer is None:
            return
        if not self._layout_written:
            self.writer.add_custom_scalars(self.layout())
            self._layout_written = True
        write_scalars(self.writer, values, step)
        if step % self.cfg.histogram_every == 0:
            for name, h in hist.items():
                self.writer.add_histogram(f"hist/{name}", h.flatten(), step)

    def layout(self) -> dict:
        """Custom Scalars: a Margin chart per probe point (middle percentile inside the outer band),
        i.e. the BN paper's Fig. 1 b/c, for the unit average and each tracked unit; drift overlays."""
        lo, mid, hi = self.qnames[0], self.qnames[len(self.qnames) // 2], self.qnames[-1]
        margins = {}
        for name, st in self.state.items():
            for prefix, label in [(f"probe/{name}", "mean over units")] + \
                                 [(f"probe/{name}/unit{k}", f"unit {k}") for k in st.units]:
                margins[f"{name} {lo}/{mid}/{hi} ({label})"] = ["Margin", [f"{prefix}/{mid}", f"{prefix}/{lo}", f"{prefix}/{hi}"]]
        drift = {f"{m} (all points)": ["Multiline", [rf"drift/.*/{m}$"]]
                 for m in ("w1_ref", "w1_prev", "shift_ref", "log_std_ratio", "path")}
        return {"ICS: percentiles of layer inputs (Fig. 1 b/c)": margins, "ICS: drift": drift}

    # --- optional: statistics of the real training mini-batches -----------------------------------
    def _log_train_batch(self, step: int) -> None:
        vals = self.train_capture.values
        if step == 0 or step % self.cfg.train_batch_every != 0 or not vals:
            vals.clear()
            return
        out = {}
        for name, act in vals.items():
            u = as_units(act.float())
            q = quantiles_sorted(sort_rows(u), self.qs).mean(dim=0)
            for j, qn in enumerate(self.qnames):
                out[f"probe_train/{name}/{qn}"] = q[j]
            out[f"probe_train/{name}/mean"] = u.mean(dim=1).mean()
            out[f"probe_train/{name}/std"] = u.std(dim=1, unbiased=False).mean()
        vals.clear()
        host = dict(zip(out, torch.stack(list(out.values())).tolist()))
        self.train_steps.append(step)
        for tag, v in host.items():
            self.series[tag].append(v)
        if self.writer is not None:
            write_scalars(self.writer, host, step)

    def close(self) -> None:
        if self.train_capture is not None:
            self.train_capture.detach()

    # --- persistence ------------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"points": list(self.state), "percentiles": list(self.cfg.percentiles),
                "tracked_units": {n: st.units for n, st in self.state.items()},
                "activation": self.activation, "bn_mode": self.cfg.bn_mode, "probe_size": int(self.x.shape[0]),
                "reference_bn_mode": "batch"}  # step 0 is always measured with batch statistics

    def arrays(self) -> Dict[str, np.ndarray]:
        """What probes.npz holds: `steps`, one array per probe-set TensorBoard tag (same names),
        `train_batch_steps` + the `probe_train/...` tags when on_train_batch is on, and `meta` (JSON)."""
        out = {tag: np.asarray(v, dtype=np.float64) for tag, v in self.series.items()}
        out["steps"] = np.asarray(self.steps, dtype=np.int64)
        out["train_batch_steps"] = np.asarray(self.train_steps, dtype=np.int64)
        out["meta"] = np.asarray(json.dumps(self.meta()))
        return out

    def final_summary(self) -> dict:
        out = {}
        for name in self.state:
            keys = ["w1_ref", "w1_ref_max", "shift_ref", "log_std_ratio", "path"]
            out[name] = {k: self.series[f"drift/{name}/{k}"][-1] for k in keys if self.series.get(f"drift/{name}/{k}")}
            sat = self.series.get(f"probe/{name}/saturation")
            if sat:
                out[name]["saturation"] = sat[-1]
        return out

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "train_steps": list(self.train_steps),
                "series": {k: list(v) for k, v in self.series.items()},
                "points": {n: st.state_dict() for n, st in self.state.items()}}

    def load_state_dict(self, s: dict) -> None:
        self.steps, self.train_steps = list(s["steps"]), list(s.get("train_steps", []))
        self.series = defaultdict(list, {k: list(v) for k, v in s["series"].items()})
        for name, ps in s["points"].items():
            st = PointState.__new__(PointState)
            st.name, st.activation = name, self._act_of(name)
            st.load_state_dict(ps, self.x.device)
            self.state[name] = st


def load_probes(path) -> tuple:
    """Read probes.npz -> (steps, {tag: array}, meta)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        series = {k: z[k] for k in z.files if k not in ("steps", "meta", "train_batch_steps")}
        return z["steps"], series, meta
