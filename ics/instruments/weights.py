"""Weight norms and the effective learning rate (BN paper §3.3; Arora, Li & Lyu 2019).

With BN after a layer, its output is invariant to the scale of each weight row w_k (a unit's
incoming weights): BN(a·w·x) = BN(w·x). Then ⟨w, ∇_w L⟩ = 0, the gradient shrinks as 1/‖w‖, and
a step of nominal size η moves the row's direction by about η‖∇‖/‖w‖ ∝ η/‖w‖²: the effective
learning rate falls as the weights grow. Every `weights.every` steps, per layer:

  row_norm_median, row_norm_iqr   median and inter-quartile range of ‖w_k‖ over rows
  eff_lr_median                   median over rows of η / ‖w_k‖², where each row is scale-invariant on
                                  its own: BN, Batch Renorm, ℓp and weight norm (its v)
  eff_lr_layer                    η / ‖W‖² of the whole layer, where only the layer is invariant
                                  (LayerNorm): a different unit from the per-row value, so its own name
  eff_lr_group_median             median over groups of η / ‖W_g‖² (GroupNorm: each group's rows together)
                                  Layers with none (model.norm=none, the output layer) log none;
                                  meta.json's `eff_lr` says which applies where
  angle_median                    median of ∠(w_k,t, w_k,t+1), the angle one update turns a row (radians)
  grad_cos_median                 median of |⟨w_k, ∇w_k⟩| / (‖w_k‖ ‖∇w_k‖): ≈ 0 when the layer is
                                  scale-invariant (under BN), the check of the claim above
  gamma_mean, gamma_std, beta_mean   BN's γ (mean of |γ|) and β

The row snapshot is taken before the update (its gradient is the live one, read after the step).
TensorBoard: weights/<layer>/<metric>.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from ics.instruments.base import Batch, Instrument, RunContext
from ics.instruments.functional import lr_of
from ics.models.norms import scale_invariant_weights
from ics.registry import INSTRUMENTS


def quantile(t: torch.Tensor, q: float) -> torch.Tensor:
    return torch.quantile(t.float(), q)


@INSTRUMENTS.register("weights")
class WeightNorms(Instrument):
    key = "weights"
    reads_update_grads = True

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        params = dict(ctx.model.named_parameters())
        self.layers = {}
        for layer, (w_names, bn_names) in ctx.model.param_layers().items():
            weight = next(n for n in w_names if n.endswith("weight"))
            gamma = next((n for n in bn_names if n.endswith("weight")), None)
            beta = next((n for n in bn_names if n.endswith("bias")), None)
            self.layers[layer] = (params[weight], params[gamma] if gamma else None, params[beta] if beta else None)
        # layer -> number of scale-invariant row groups of its weight (rows, 1 for LayerNorm, G for GroupNorm)
        invariant = scale_invariant_weights(ctx.model)
        self.groups = {
            layer: invariant[n] for layer, (ws, _) in ctx.model.param_layers().items() for n in ws if n in invariant
        }
        self.before: Dict[str, torch.Tensor] = {}

    def wants_batch(self, step: int) -> bool:
        return (step + 1) % self.cfg.every == 0

    def observe_batch(self, batch: Batch) -> None:
        self.before = {layer: w.detach().reshape(w.shape[0], -1).clone() for layer, (w, _, _) in self.layers.items()}

    def due(self, step: int, final: bool = False) -> bool:
        return bool(self.before) and step % self.cfg.every == 0

    def measure(self, step: int) -> None:
        lr = lr_of(self.ctx.optimizer)
        names, values = [], []
        for layer, (w, gamma, beta) in self.layers.items():
            w0 = self.before[layer]
            w1 = w.detach().reshape(w.shape[0], -1)
            n0 = w0.norm(dim=1)
            cos_step = ((w0 * w1).sum(dim=1) / (n0 * w1.norm(dim=1)).clamp_min(1e-30)).clamp(-1, 1)
            stats = {
                "row_norm_median": quantile(n0, 0.5),
                "row_norm_iqr": quantile(n0, 0.75) - quantile(n0, 0.25),
                "angle_median": quantile(torch.arccos(cos_step), 0.5),
            }
            if w.grad is not None:
                g = w.grad.detach().reshape(w.shape[0], -1)
                gc = (w0 * g).sum(dim=1).abs() / (n0 * g.norm(dim=1)).clamp_min(1e-30)
                stats["grad_cos_median"] = quantile(gc, 0.5)
            if layer in self.groups:  # ‖W_g‖ of each invariant group of consecutive rows
                groups = self.groups[layer]
                g_norm = w0.reshape(groups, -1).norm(dim=1)
                kind = (
                    "eff_lr_median"
                    if groups == w0.shape[0]
                    else "eff_lr_layer"
                    if groups == 1
                    else "eff_lr_group_median"
                )
                stats[kind] = quantile(lr / g_norm.clamp_min(1e-30) ** 2, 0.5)
            if gamma is not None:
                stats["gamma_mean"] = gamma.detach().abs().mean()
                stats["gamma_std"] = gamma.detach().std()
                stats["beta_mean"] = beta.detach().mean()
            names += [f"weights/{layer}/{k}" for k in stats]
            values += list(stats.values())
        self.before = {}
        self.emit(step, dict(zip(names, torch.stack(values).tolist())))

    def layout(self) -> dict:
        return {
            "Weight norms and effective LR (BN paper §3.3)": {
                "median row norm ‖w_k‖": ["Multiline", [r"weights/.*/row_norm_median$"]],
                "effective LR η/‖w‖² (scale-invariant weights)": [
                    "Multiline",
                    [r"weights/.*/eff_lr_(median|layer|group_median)$"],
                ],
                "angular update per step": ["Multiline", [r"weights/.*/angle_median$"]],
                "|cos(w, ∇w)| (≈0: scale-invariant)": ["Multiline", [r"weights/.*/grad_cos_median$"]],
            }
        }

    def meta(self) -> Dict[str, Any]:
        kinds = {
            n: ("row" if g == self.layers[n][0].shape[0] else "layer" if g == 1 else f"{g} groups")
            for n, g in self.groups.items()
        }
        return {
            "layers": list(self.layers),
            "bn_layers": list(self.groups),  # the layers with an effective LR
            "eff_lr": {n: kinds.get(n, "none: not scale-invariant") for n in self.layers},
        }

    def summary(self) -> Dict[str, Any]:
        out = {}
        for layer in self.layers:
            d = {}
            for m in (
                "row_norm_median",
                "eff_lr_median",
                "eff_lr_layer",
                "eff_lr_group_median",
                "angle_median",
                "grad_cos_median",
                "gamma_mean",
            ):
                s = self.series.get(f"weights/{layer}/{m}")
                if s:
                    d[m] = s[-1]
            out[layer] = d
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "before": {k: v.cpu() for k, v in self.before.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.before = {k: v.to(self.ctx.device) for k, v in state.get("before", {}).items()}
