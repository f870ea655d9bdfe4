"""Layer-input distribution probes (Ioffe & Szegedy 2015, §2 and Fig. 1 b/c, extended to every layer).

Every `probe.every` steps (and at step 0, before any update, and at the last step) a fixed probe
set is run through the model under no_grad; forward hooks on the selected probe points capture each
point's input, and percentiles, moments, saturation and drift (ics.instruments.stats) are computed
on the device. One host sync per snapshot. The model is left exactly as it was found: parameters,
BN running statistics and counters, train/eval mode, RNG states, and no hooks behind.
"""

from __future__ import annotations

import fnmatch
import math
import zlib
from contextlib import contextmanager
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ics.config import ConfigError, ProbeConfig
from ics.data import stratified_indices
from ics.instruments.base import Instrument, RunContext
from ics.instruments.stats import (
    as_units,
    quantiles_sorted,
    safe_std,
    saturation,
    sigmoid_flat_threshold,
    sort_rows,
    tanh_flat_threshold,
    w1_shape_sorted,
    w1_sorted,
)
from ics.models import noise_off
from ics.record import names
from ics.registry import INSTRUMENTS

FIG_MIN_GAP = 10_000  # steps between two draws of the Fig. 1 b/c image (the last step is always drawn)

MAX_SAMPLES = 4096  # per unit; conv channels have batch*H*W samples, a fixed random subset is kept
DRIFT_METRICS = ("w1_ref", "w1_prev", "shift_ref", "log_std_ratio", "path", "w1_raw", "w1_shape")
MEDIAN_METRICS = ("w1_ref", "w1_raw", "w1_shape")  # also summarised by the median over units


def select_points(model: nn.Module, patterns) -> Dict[str, tuple]:
    points = model.probe_points()
    chosen = {n: p for n, p in points.items() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)}
    if not chosen:
        raise ConfigError(f"probe.points={list(patterns)!r} matches no probe point; available: {', '.join(points)}")
    return chosen


# the flat part of a saturating nonlinearity starts at |x| = this (derivative < 5% of its peak: sigmoid 4.36,
# tanh 2.18); figures of such nets share a y-range of ±Y_SATURATED × that, and shade the flat part
SATURATION = {"sigmoid": round(sigmoid_flat_threshold(), 2), "tanh": round(tanh_flat_threshold(), 2)}
Y_SATURATED = 1.5


class Capture:
    """Forward hooks that record what flows through the given points; attach()/detach() symmetric."""

    def __init__(self, points: Dict[str, tuple]):
        self.points = points
        self.values: Dict[str, torch.Tensor] = {}
        self.handles: List = []

    def attach(self) -> "Capture":
        for name, (module, kind) in self.points.items():
            if kind == "input":
                h = module.register_forward_pre_hook(
                    lambda m, args, n=name: self.values.__setitem__(n, args[0].detach())
                )
            else:
                h = module.register_forward_hook(lambda m, args, out, n=name: self.values.__setitem__(n, out.detach()))
            self.handles.append(h)
        return self

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


@contextmanager
def probe_mode(model: nn.Module, bn_mode: str):
    """Run the model for measurement only. batch: BN normalises with the batch's own statistics
    (what the next layer sees in training) without touching running stats or counters; eval: BN
    uses its running statistics."""
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


def capture(model: nn.Module, points: Dict[str, tuple], x: torch.Tensor, bn_mode: str) -> Dict[str, torch.Tensor]:
    """The values at `points` for input x, measured in probe_mode; hooks removed afterwards."""
    cap = Capture(points).attach()
    try:
        with probe_mode(model, bn_mode), noise_off(model):
            model(x)
    finally:
        cap.detach()
    return cap.values


class PointState:
    """Reference/previous snapshots of one probe point (sorted sample subset, per-unit moments)."""

    def __init__(self, name: str, activation: Optional[str], n_units: int, n_samples: int, cfg: ProbeConfig, device):
        self.name, self.activation = name, activation
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + zlib.crc32(name.encode()))
        self.units = torch.randperm(n_units, generator=gen)[: min(cfg.units, n_units)].sort().values.tolist()
        self.cols = (
            None
            if n_samples <= MAX_SAMPLES
            else torch.randperm(n_samples, generator=gen)[:MAX_SAMPLES].sort().values.to(device)
        )
        self.ref = self.prev = None  # (sorted, mean, std)
        self.path = torch.zeros(n_units, device=device)

    def state_dict(self) -> dict:
        cpu = lambda t: None if t is None else tuple(x.cpu() for x in t)  # noqa: E731
        return {
            "units": self.units,
            "cols": None if self.cols is None else self.cols.cpu(),
            "ref": cpu(self.ref),
            "prev": cpu(self.prev),
            "path": self.path.detach().cpu().clone(),
        }

    @classmethod
    def from_state(cls, name: str, activation: Optional[str], s: dict, device) -> "PointState":
        st = cls.__new__(cls)
        dev = lambda t: None if t is None else tuple(x.to(device) for x in t)  # noqa: E731
        st.name, st.activation = name, activation
        st.units, st.ref, st.prev = list(s["units"]), dev(s["ref"]), dev(s["prev"])
        st.cols = None if s["cols"] is None else s["cols"].to(device)
        st.path = s["path"].to(device)
        return st


@INSTRUMENTS.register("probe")
class LayerInputProbes(Instrument):
    """Percentiles, moments, saturation and drift of each probe point's input on a fixed probe set."""

    key = "probe"

    def __init__(self, cfg: ProbeConfig, ctx: RunContext):
        super().__init__(cfg, ctx)
        self.points = select_points(ctx.model, cfg.points)
        data = ctx.data
        if data.task == "regression":  # no classes to stratify by: a plain random subset
            gen = torch.Generator().manual_seed(cfg.seed)
            idx = torch.randperm(data.x_test.shape[0], generator=gen)[: cfg.size].sort().values
        else:
            idx = stratified_indices(data.y_test.cpu(), cfg.size, cfg.seed)
        idx = idx.to(data.x_test.device)
        self.x = data.x_test[idx]
        self.activation = getattr(ctx.cfg.model, "activation", None)
        self.qs = [q / 100 for q in cfg.percentiles]
        self.qnames = [names.percentile_name(q) for q in cfg.percentiles]
        self.state: Dict[str, PointState] = {}
        every = cfg.histogram_every or max(cfg.every, round(ctx.steps / 10 / cfg.every) * cfg.every)
        self.hist_every = every
        # the Fig. 1 b/c image (TensorBoard's Images tab): at the quarter points of the run, at
        # least FIG_MIN_GAP steps apart, and at the end. A matplotlib draw costs ~0.1 s (~100 steps
        # of the Fig. 1 MLP on a CPU core), so a draw per 10,000 steps stays near 1% of a run.
        self.fig_every = max(cfg.every, math.ceil(max(ctx.steps / 4, FIG_MIN_GAP) / cfg.every) * cfg.every)
        self.samples: Dict[str, List[torch.Tensor]] = {}  # tag -> (tracked unit's values) per sample step
        self.sample_steps: List[int] = []

    @classmethod
    def check(cls, section: ProbeConfig, cfg, model: nn.Module, spec) -> None:
        select_points(model, section.points)
        if spec.test_size is not None and section.size > spec.test_size:
            raise ConfigError(
                f"probe.size={section.size} is invalid: must be <= the test split size "
                f"({spec.test_size} in {spec.where})"
            )

    def _act_of(self, name: str) -> Optional[str]:
        return self.activation if name.endswith(".pre_act") else None

    # --- the loop's questions -----------------------------------------------------------------------
    def due(self, step: int, final: bool = False) -> bool:
        return final or step % self.cfg.every == 0

    def wants_batch(self, step: int) -> bool:
        return self.cfg.on_train_batch and step > 0 and step % self.cfg.train_batch_every == 0

    # --- one snapshot of the probe set --------------------------------------------------------------
    def measure(self, step: int) -> None:
        # the step-0 reference is always taken with batch statistics: at step 0 the running
        # statistics are PyTorch's defaults (mean 0, var 1) and would not normalise at all
        mode = "batch" if step == 0 else self.cfg.bn_mode
        values = capture(self.ctx.model, self.points, self.x, mode)
        tags, tensors, hist = [], [], {}
        for name, act in values.items():
            point_tags, flat, h = self._point_stats(name, as_units(act.float()))
            tags += point_tags
            tensors.append(flat)
            hist[name] = h
        host = dict(zip(tags, torch.cat(tensors).tolist()))  # the one host sync per snapshot
        self.emit(step, host)
        if step % self.hist_every == 0 or step == self.ctx.steps:
            self._keep_samples(step, values)
            writer = self.ctx.writer
            if writer is not None:
                for name, h in hist.items():
                    h = h.flatten()
                    h = h[torch.isfinite(h)]  # a diverged net's inputs: inf/NaN have no bin
                    if h.numel():  # all non-finite: no histogram (TensorBoard refuses an empty one)
                        writer.add_histogram(names.hist_tag(name), h, step)
        if self.ctx.writer is not None and (step % self.fig_every == 0 or step == self.ctx.steps):
            self._draw_fig1(step)

    def _draw_fig1(self, step: int) -> None:
        """The run's own Fig. 1 b/c so far, as an image: the first tracked unit of the last
        `*.pre_act` point, its p15–p85 band and median over the steps measured up to now."""
        pre = [n for n in self.state if n.endswith(".pre_act")]
        if not pre or len(self.steps["main"]) < 2:
            return
        point, unit = pre[-1], self.state[pre[-1]].units[0]
        lo, mid, hi = self.qnames[0], self.qnames[len(self.qnames) // 2], self.qnames[-1]
        series = [self.series.get(names.unit_tag(point, unit, q)) for q in (lo, mid, hi)]
        if any(s is None for s in series):
            return
        from matplotlib.figure import Figure

        norm = getattr(self.ctx.cfg.model, "norm", "?")
        # fixed margins: a constrained layout would triple the cost of each draw (~0.2 s -> ~0.07 s)
        fig = Figure(figsize=(5.2, 3.2))
        fig.subplots_adjust(left=0.14, right=0.97, bottom=0.15, top=0.91)
        ax = fig.subplots()
        colour = "tab:blue" if norm == "batch" else "tab:orange"
        x = self.steps["main"]
        ax.fill_between(x, series[0], series[2], color=colour, alpha=0.3, lw=0, label=f"{lo}–{hi}")
        ax.plot(x, series[1], color=colour, lw=1.8, label=mid)
        sat = SATURATION.get(str(getattr(self.ctx.cfg.model, "activation", "")))
        if sat is not None:  # one y-range in every run of a sweep, so that the Images cards compare
            ax.set_ylim(-Y_SATURATED * sat, Y_SATURATED * sat)
            for a, b in ((-Y_SATURATED * sat, -sat), (sat, Y_SATURATED * sat)):
                ax.axhspan(a, b, color="grey", alpha=0.12, lw=0)
        ax.set_title(
            f"{point} unit {unit}, model.norm={norm}" + (f" (grey: saturated, |x| > {sat})" if sat else ""), fontsize=9
        )
        ax.set_xlabel("training step")
        ax.set_ylabel("input to the nonlinearity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        self.ctx.writer.add_figure(names.TAG_FIG1, fig, step, close=True)

    def _keep_samples(self, step: int, values: Dict[str, torch.Tensor]) -> None:
        """The tracked units' raw values on the probe set (at most MAX_SAMPLES each), for density
        plots of how a unit's input distribution moves (ics report)."""
        if self.sample_steps and self.sample_steps[-1] == step:
            return
        self.sample_steps.append(step)
        for name, act in values.items():
            u = as_units(act.float())
            st = self.state[name]
            sub = u if st.cols is None else u[:, st.cols]
            for k in st.units:
                self.samples.setdefault(f"samples/{name}/unit{k}", []).append(sub[k].detach().cpu().clone())

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
        raw = w1_sorted(s, ref_s)
        w1_prev = w1_sorted(s, st.prev[0]) / unit
        st.path = st.path + w1_prev  # not in place: an earlier state_dict stays a snapshot
        drift = torch.stack(
            [
                raw / unit,
                w1_prev,
                ((mu - ref_mu) / unit).abs(),
                torch.log(sd.clamp_min(1e-12) / unit).abs(),
                st.path,
                raw,
                w1_shape_sorted(s, mu, sd, ref_s, ref_mu, ref_sd),
            ]
        )  # (7, C)
        st.prev = (s, mu, sd)
        sat = saturation(u, st.activation) if st.activation else {}
        pmove = (q - quantiles_sorted(ref_s, self.qs)).abs().mean(dim=0)  # (P,): per unit, then the mean
        medians = drift[[DRIFT_METRICS.index(m) for m in MEDIAN_METRICS]].median(dim=1).values
        parts = [
            q.mean(dim=0),
            q[st.units].flatten(),
            torch.stack([mu.mean(), mu.std(unbiased=False), sd.mean(), sd.std(unbiased=False)]),
            torch.stack(list(sat.values())) if sat else q.new_zeros(0),
            torch.stack([drift.mean(dim=1), drift.amax(dim=1)], dim=1).flatten(),
            medians,
            pmove,
        ]
        return self._tags(name, st, list(sat)), torch.cat([p.float() for p in parts]), sub

    def _tags(self, name: str, st: PointState, sat_keys: List[str]) -> List[str]:
        """Tag names in the order _point_stats lays the values out."""
        tags = [names.probe_tag(name, qn) for qn in self.qnames]
        tags += [names.unit_tag(name, k, qn) for k in st.units for qn in self.qnames]
        tags += [names.probe_tag(name, m) for m in ("mean", "mean_spread", "std", "std_spread")]
        tags += [names.probe_tag(name, k) for k in sat_keys]
        for metric in DRIFT_METRICS:
            tags += [names.drift_tag(name, metric), names.drift_tag(name, metric + "_max")]
        tags += [names.drift_tag(name, m + "_median") for m in MEDIAN_METRICS]
        tags += [names.drift_tag(name, f"pmove_{qn}") for qn in self.qnames]
        return tags

    # --- optional: statistics of the real training mini-batches -------------------------------------
    def observe_batch(self, batch) -> None:
        out = {}
        for name, act in capture(self.ctx.model, self.points, batch.x, "batch").items():
            u = as_units(act.float())
            q = quantiles_sorted(sort_rows(u), self.qs).mean(dim=0)
            for j, qn in enumerate(self.qnames):
                out[names.probe_train_tag(name, qn)] = q[j]
            out[names.probe_train_tag(name, "mean")] = u.mean(dim=1).mean()
            out[names.probe_train_tag(name, "std")] = u.std(dim=1, unbiased=False).mean()
        host = dict(zip(out, torch.stack(list(out.values())).tolist()))
        self.emit(batch.step, host, stream="train_batch")

    # --- output -------------------------------------------------------------------------------------
    def layout(self) -> dict:
        """Custom Scalars: a Margin chart per probe point (middle percentile inside the outer band),
        i.e. the BN paper's Fig. 1 b/c, for the unit average and each tracked unit; drift overlays."""
        lo, mid, hi = self.qnames[0], self.qnames[len(self.qnames) // 2], self.qnames[-1]
        margins = {}
        for name, st in self.state.items():
            if not name.endswith(".pre_act"):
                continue
            for k, label in [(None, "mean over units"), (st.units[0], f"unit {st.units[0]}")]:
                tag = (
                    (lambda q, name=name: names.probe_tag(name, q))
                    if k is None
                    else (lambda q, k=k, name=name: names.unit_tag(name, k, q))
                )
                margins[f"{name} {lo}/{mid}/{hi} ({label})"] = ["Margin", [tag(mid), tag(lo), tag(hi)]]
        drift = {
            f"{m} (all points)": ["Multiline", [rf"drift/.*/{m}$"]]
            for m in ("w1_raw", "w1_shape", "w1_ref", "w1_prev", "shift_ref", "log_std_ratio", "path")
        }
        return {
            "Fig. 1 b/c: percentiles of each nonlinearity's input (tick one run at a time to compare)": margins,
            "ICS: drift": drift,
        }

    def meta(self) -> dict:
        return {
            "points": list(self.state),
            "percentiles": list(self.cfg.percentiles),
            "tracked_units": {n: st.units for n, st in self.state.items()},
            "activation": self.activation,
            "bn_mode": self.cfg.bn_mode,
            "probe_size": int(self.x.shape[0]),
            "reference_bn_mode": "batch",
        }  # step 0 is always measured with batch statistics

    def arrays(self):
        out = super().arrays()
        out.setdefault("train_batch_steps", np.zeros(0, dtype=np.int64))  # stream of the probe_train/ tags
        out["sample_steps"] = np.asarray(self.sample_steps, dtype=np.int64)
        for tag, rows in self.samples.items():
            out[tag] = torch.stack(rows).numpy().astype(np.float32)  # (sample steps, values)
        return out

    def summary(self) -> Dict[str, Any]:
        """Final drift (and saturation) per probe point, for summary.json."""
        out = {}
        for name in self.state:
            keys = [
                "w1_ref",
                "w1_ref_max",
                "shift_ref",
                "log_std_ratio",
                "path",
                "w1_raw",
                "w1_shape",
                "w1_ref_median",
                "w1_raw_median",
                "w1_shape_median",
            ]
            out[name] = {
                k: self.series[names.drift_tag(name, k)][-1] for k in keys if self.series.get(names.drift_tag(name, k))
            }
            sat = self.series.get(names.probe_tag(name, "saturation"))
            if sat:
                out[name]["saturation"] = sat[-1]
        return out

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "points": {n: st.state_dict() for n, st in self.state.items()},
            "samples": {k: [t.clone() for t in v] for k, v in self.samples.items()},
            "sample_steps": list(self.sample_steps),
        }

    def load_state_dict(self, s: dict) -> None:
        super().load_state_dict(s)
        self.samples = {k: list(v) for k, v in s.get("samples", {}).items()}
        self.sample_steps = list(s.get("sample_steps", []))
        self.state = {n: PointState.from_state(n, self._act_of(n), ps, self.x.device) for n, ps in s["points"].items()}
