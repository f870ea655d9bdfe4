"""Gradient flow per layer: do the first layers' gradients vanish, and does BN keep them alive?

The BN explainer's claim (BN paper §3.3, §4.2: saturating nonlinearities train with BN) in numbers.
Every `gradients.every` steps, from the gradients of the step just taken (the ones the optimiser
used), per parameterised layer i (h1, ..., out):

  grad_norm    ‖∇W_i L‖, the Frobenius norm of the affine weight's gradient
  grad_ratio   ‖∇W_i L‖ / ‖∇W_out L‖: well below 1 in the first layers and falling with depth is
               a vanishing gradient

and per hidden block, on that step's batch (BN with the batch's statistics; no noise, no dropout):

  deriv_mean   mean of g′(x) over the block's pre-activations x, relative to g′'s peak
               (sigmoid: σ′/0.25; tanh: tanh′; ReLU: the fraction x > 0)
  saturated    fraction with g′(x) < 5% of its peak (sigmoid |x| > 4.36, tanh |x| > 2.18, ReLU x ≤ 0)

g′ is taken by autograd on the block's own activation module, so any activation works; its peak
is the maximum of g′ on [−10, 10]. TensorBoard: gradients/<layer>/<metric>.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from ics.config import ConfigError
from ics.instruments.base import Batch, Instrument, RunContext
from ics.instruments.probes import capture
from ics.registry import INSTRUMENTS

FLAT = 0.05  # g′ below this fraction of its peak counts as saturated (the probes' rule too)


def derivative(act: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """g′(x) elementwise, by autograd (g acts elementwise)."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(act(x).sum(), x)
    return g.detach()


def peak_derivative(act: torch.nn.Module) -> float:
    return float(derivative(act, torch.linspace(-10, 10, 2001)).max())


@INSTRUMENTS.register("gradients")
class GradientFlow(Instrument):
    key = "gradients"
    reads_update_grads = True

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        params = dict(ctx.model.named_parameters())
        self.weights = {
            layer: params[next(n for n in w if n.endswith("weight"))]
            for layer, (w, _) in ctx.model.param_layers().items()
        }
        self.blocks = dict(ctx.model.blocks.items())
        self.points = {f"{name}.pre_act": block.probe_points()["pre_act"] for name, block in self.blocks.items()}
        self.peaks = {name: peak_derivative(block.act) for name, block in self.blocks.items()}
        self.x: Optional[torch.Tensor] = None

    @classmethod
    def check(cls, section, cfg, model, spec) -> None:
        if not (hasattr(model, "param_layers") and hasattr(model, "blocks")):
            raise ConfigError(f"gradients.enabled=true is invalid: model={cfg.model.name} does not list its layers")

    def wants_batch(self, step: int) -> bool:
        return (step + 1) % self.cfg.every == 0

    def observe_batch(self, batch: Batch) -> None:
        self.x = batch.x  # the gradients are read after this step's backward

    def due(self, step: int, final: bool = False) -> bool:
        return self.x is not None and step % self.cfg.every == 0

    def measure(self, step: int) -> None:
        norms = {
            layer: (w.grad.detach().norm() if w.grad is not None else torch.tensor(float("nan")))
            for layer, w in self.weights.items()
        }
        last = norms[list(norms)[-1]]
        values: Dict[str, torch.Tensor] = {}
        for layer, n in norms.items():
            values[f"gradients/{layer}/grad_norm"] = n
            values[f"gradients/{layer}/grad_ratio"] = n / last.clamp_min(1e-30)
        pre = capture(self.ctx.model, self.points, self.x, "batch")
        for name, block in self.blocks.items():
            d = derivative(block.act, pre[f"{name}.pre_act"]) / max(self.peaks[name], 1e-30)
            values[f"gradients/{name}/deriv_mean"] = d.mean()
            values[f"gradients/{name}/saturated"] = (d < FLAT).float().mean()
        self.x = None
        host = torch.stack([v.float().to("cpu") for v in values.values()]).tolist()  # one sync
        self.emit(step, dict(zip(values, host)))

    def layout(self) -> dict:
        return {
            "Gradient flow (vanishing gradients)": {
                "‖∇W‖ per layer / ‖∇W_out‖": ["Multiline", [r"gradients/.*/grad_ratio$"]],
                "‖∇W‖ per layer": ["Multiline", [r"gradients/.*/grad_norm$"]],
                "saturated fraction of g′ (< 5% of its peak)": ["Multiline", [r"gradients/.*/saturated$"]],
            }
        }

    def meta(self) -> Dict[str, Any]:
        return {"layers": list(self.weights), "blocks": list(self.blocks), "flat": FLAT}

    def summary(self) -> Dict[str, Any]:
        """Per layer: the last value and the mean over the run of grad_ratio (and of saturated)."""
        out = {}
        for layer in self.weights:
            d = {}
            for m in ("grad_ratio", "saturated"):
                s = self.series.get(f"gradients/{layer}/{m}")
                if s:
                    d[m] = s[-1]
                    d[f"{m}_mean"] = float(np.nanmean(s))
            out[layer] = d
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "x": None if self.x is None else self.x.cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        x = state.get("x")
        self.x = None if x is None else x.to(self.ctx.device)
