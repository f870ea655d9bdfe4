"""Gradient-based internal covariate shift (Santurkar et al. 2018, Definition 2.1).

At step t, on the step's own batch B_t and parameters θ_t:

  G_i  = ∇_{W_i} L(θ_t; B_t)
  G′_i = ∇_{W_i} L(θ′; B_t), where θ′ is θ_t with layers 1 … i−1 (only those) moved by the update
         the optimiser actually takes at this step (momentum, Adam state, weight decay included)

and per parameterised layer i (h1, …, out):

  l2 = ‖G_i − G′_i‖,  rel_l2 = ‖G_i − G′_i‖ / ‖G_i‖,  cos = ⟨G_i, G′_i⟩ / (‖G_i‖ ‖G′_i‖),  grad_norm = ‖G_i‖

rel_l2 is the comparable form under BN, whose weight gradients scale as 1/‖w‖. With BN the same
four numbers are also given with the layer's γ, β counted as part of "the layer" (suffix
`_with_bn`). cos = 1 and l2 = 0 mean the earlier layers' updates did not change what layer i is
asked to do: no ICS in this sense. Under noisy BN (model.noise=santurkar) G, G′ and the update are
computed with the noise the real step draws (ics.models.noise_replay), so the update is the one the
optimiser actually takes, bit for bit.
  gauge/<c>/<layer>/cos, rel_l2   (grad_ics.gauge_scales; models with normaliser-fed rows) the same at
         the point where every such row has norm c — the same function, its gradients scaled by 1/c —
         with the update one plain SGD step −η·G at the nominal LR (no optimiser state): cos and
         rel_l2 move with c at a fixed η, so a BN-vs-none comparison holds only across the range.
         Summary: per layer `cos_mean_at_norm_<c>`, each c's mean over the run. Cadence: every `grad_ics.every` steps plus the first
`grad_ics.first` steps. TensorBoard: grad_ics/<layer>/<metric>.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch

from ics.config import ConfigError
from ics.instruments.base import Batch, Instrument, RunContext
from ics.instruments.functional import flat, live_params, loss_and_grad, optimizer_update
from ics.models import noise_replay
from ics.registry import INSTRUMENTS

METRICS = ("l2", "rel_l2", "cos", "grad_norm")


def compare(g: torch.Tensor, g2: torch.Tensor) -> List[torch.Tensor]:
    diff = (g - g2).norm()
    gn, g2n = g.norm(), g2.norm()
    cos = (g * g2).sum() / (gn * g2n).clamp_min(1e-30)
    return [diff, diff / gn.clamp_min(1e-30), cos, gn]


@INSTRUMENTS.register("grad_ics")
class GradientICS(Instrument):
    key = "grad_ics"

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        self.layers = ctx.model.param_layers()
        from ics.instruments.landscape import bn_fed_weights

        self.fed = bn_fed_weights(ctx.model)  # weight -> its scale-invariant row groups (none: no gauge)

    @classmethod
    def check(cls, section, cfg, model, spec) -> None:
        if not hasattr(model, "param_layers"):
            raise ConfigError(f"grad_ics.enabled=true is invalid: model={cfg.model.name} does not list its layers")

    def wants_batch(self, step: int) -> bool:
        return step < self.cfg.first or step % self.cfg.every == 0

    def observe_batch(self, batch: Batch) -> None:
        ctx = self.ctx
        params = live_params(ctx.model)
        with noise_replay(ctx.model) as rewind:  # noisy BN: every pass sees the real step's draw
            rewind()
            _, grads = loss_and_grad(ctx.model, params, batch.x, batch.y, ctx.loss_fn, noise=True)
            delta = optimizer_update(ctx.model, ctx.optimizer, grads)
            tags, values, earlier = [], [], []
            for layer, (w_names, bn_names) in self.layers.items():
                if earlier:  # layer 1 has no earlier layers: G′ = G by definition
                    moved = {n: (p + delta[n] if n in earlier else p) for n, p in params.items()}
                    rewind()
                    _, grads2 = loss_and_grad(ctx.model, moved, batch.x, batch.y, ctx.loss_fn, noise=True)
                else:
                    grads2 = grads
                variants = [("", w_names)] + ([("_with_bn", w_names + bn_names)] if bn_names else [])
                for suffix, ns in variants:
                    values += compare(flat(grads, ns), flat(grads2, ns))
                    tags += [f"grad_ics/{layer}/{m}{suffix}" for m in METRICS]
                earlier += w_names + bn_names
            for c in self.cfg.gauge_scales if self.fed else ():
                rewind()
                t, v = self.at_scale(params, c, batch, rewind)
                tags += t
                values += v
        host = torch.stack(values).tolist()  # one sync per measurement
        self.emit(batch.step, dict(zip(tags, host)))

    def at_scale(self, params, c: float, batch: Batch, rewind):
        """cos, rel_l2 per layer with every normaliser-fed row at norm c and an SGD step at the nominal LR."""
        from ics.instruments.functional import lr_of
        from ics.instruments.landscape import normalised_rows

        ctx, lr = self.ctx, lr_of(self.ctx.optimizer)
        point = normalised_rows(params, self.fed, c)
        _, grads = loss_and_grad(ctx.model, point, batch.x, batch.y, ctx.loss_fn, noise=True)
        tags, values, earlier = [], [], []
        for layer, (w_names, bn_names) in self.layers.items():
            if earlier:
                moved = {n: (p - lr * grads[n] if n in earlier else p) for n, p in point.items()}
                rewind()
                _, grads2 = loss_and_grad(ctx.model, moved, batch.x, batch.y, ctx.loss_fn, noise=True)
                diff, rel, cos, _ = compare(flat(grads, w_names), flat(grads2, w_names))
                values += [cos, rel]
                tags += [f"grad_ics/gauge/{c:g}/{layer}/cos", f"grad_ics/gauge/{c:g}/{layer}/rel_l2"]
            earlier += w_names + bn_names
        return tags, values

    def layout(self) -> dict:
        return {
            "Gradient ICS (Santurkar et al. 2018, Def. 2.1)": {
                "cos(G, G′) per layer": ["Multiline", [r"grad_ics/.*/cos$"]],
                "‖G − G′‖ / ‖G‖ per layer": ["Multiline", [r"grad_ics/.*/rel_l2$"]],
                "‖G‖ per layer": ["Multiline", [r"grad_ics/.*/grad_norm$"]],
            }
        }

    def meta(self) -> Dict[str, Any]:
        return {
            "layers": list(self.layers),
            "metrics": list(METRICS),
            "gauge_scales": list(self.cfg.gauge_scales) if self.fed else [],
            "with_bn": [n for n, (_, bn) in self.layers.items() if bn],
        }

    def summary(self) -> Dict[str, Any]:
        """Per layer: the last value and the mean over all measurements of cos and rel_l2."""
        out = {}
        for layer in self.layers:
            d = {}
            for m in ("cos", "rel_l2"):
                series = self.series.get(f"grad_ics/{layer}/{m}")
                if series:
                    d[m] = series[-1]
                    d[f"{m}_mean"] = float(np.nanmean(series))
            for c in self.cfg.gauge_scales:  # mean cos over the run with the fed rows at norm c
                s = self.series.get(f"grad_ics/gauge/{c:g}/{layer}/cos")
                if s:
                    d[f"cos_mean_at_norm_{c:g}"] = float(np.nanmean(s))
            out[layer] = d
        return out
