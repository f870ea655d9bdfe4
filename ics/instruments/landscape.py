"""Loss-landscape smoothness along the training direction (Santurkar et al. 2018, §3.2, Fig. 4).

At step t, with g = ∇L(θ_t; B_t) on the step's batch (BN with B_t's statistics):

  direction=gradient  points θ_k = θ_t − η_k g,  η_k = lr × landscape.multipliers (0.25 … 4)
  direction=update    points θ_k = θ_t + s_k Δ,  Δ = the optimiser's actual update (momentum/Adam)

  loss_min, loss_max        min / max_k L(θ_k; B_t)                      (loss Lipschitzness: the range)
  grad_change               max_k ‖∇L(θ_k) − g‖                          (gradient predictiveness)
  grad_change_rel           grad_change / ‖g‖
  beta                      max_k ‖∇L(θ_k) − g‖ / ‖θ_k − θ_t‖            (effective β-smoothness;
                                                                          = ‖g_η − g‖ / (η‖g‖) for the gradient)
  si/loss_range, si/grad_change_rel, si/beta
                            (landscape.scale_invariant) the same three at θ̂, where each weight row w_j
                            that feeds a BN (ℓp, weight-norm) unit is replaced by w_j/‖w_j‖ — under
                            LayerNorm the whole weight, under GroupNorm each group's rows, scaled to
                            unit norm together (bn_fed_weights; the network's function is unchanged),
                            with ĝ = ∇L(θ̂) and points θ̂ − η_k ĝ. None for norm=none, batch_renorm.
                            Rescaling those rows by any c_j > 0 leaves θ̂, hence these, unchanged;
                            the plain measures move (the step is η‖g‖ while ‖g‖ ∝ 1/c), so BN's weight
                            growth alone can make its landscape look smoother along the actual step
  gauge/<c>/loss_range, …   (landscape.gauge_scales, with scale_invariant) the same three with those
                            rows at norm c instead of 1: unit norm is one choice of gauge among many
                            (the function is the same at every c, the step η·g is not); a comparison
                            with a plain net holds only if it holds at every c. Summary:
                            `<measure>_mean_at_norm_<c>`, each c's mean over the run
  top_eig, min_eig,         (landscape.hessian) the Hessian's largest and smallest *algebraic*
  two_over_lr               eigenvalues at θ_t (Lanczos on Hessian-vector products), next to 2/lr:
                            gradient descent is stable on a quadratic only while top_eig < 2/lr
  top_eig_resid,            ‖Hv − λv‖ / max(|λ_max|, |λ_min|) of each extreme Ritz pair; Lanczos runs
  min_eig_resid,            on until both are <= landscape.lanczos_tol or landscape.lanczos_max_iters
  eig_converged             steps; eig_converged is 1 when they are, 0 when the cap stopped it (the
  lanczos_steps             report then marks the eigenvalues unconverged); lanczos_steps: steps taken

TensorBoard: landscape/<metric>. The Lanczos start vector comes from the instrument's own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ics.instruments.base import Batch, Instrument, RunContext
from ics.instruments.functional import live_params, loss_and_grad, lr_of, optimizer_update
from ics.models.norms import scale_invariant_weights
from ics.registry import INSTRUMENTS


@dataclass
class Extremes:
    """The Hessian's extreme Ritz pairs: values, relative residuals ‖Hv − λv‖ / max(|λ_max|, |λ_min|)
    of their Ritz vectors (computed with one more Hessian-vector product each), the Lanczos steps
    taken, and whether both residuals are within the tolerance."""

    top: float
    bottom: float
    top_resid: float
    bottom_resid: float
    steps: int
    converged: bool


def lanczos_extremes(
    model, params, x, y, loss_fn, iters: int, gen: torch.Generator, max_iters: Optional[int] = None, tol: float = 1e-3
) -> Extremes:
    """(largest, smallest) algebraic Hessian eigenvalue at params: Lanczos on Hessian-vector products
    (double backward) with full reorthogonalisation, `iters` steps first, then more (a further half of
    `iters` at a time) until both extreme Ritz pairs have a relative residual <= tol or `max_iters`
    steps are spent. The residual of a Ritz pair (θ, Qs) is β_k |s_k| (Saad, Numerical Methods for
    Large Eigenvalue Problems, §6.6: Lanczos); the recorded one is the true ‖Hv − θv‖. Power
    iteration would return the eigenvalue of largest *magnitude*, which is the most negative one where
    |λ_min| > λ_max (a saddle) — not the one that bounds gradient descent's stability (λ_max < 2/η)."""
    names = list(params)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        _, grads, leaves = loss_and_grad(model, params, x, y, loss_fn, create_graph=True)
        g = torch.cat([grads[n].reshape(-1) for n in names])
        hv = torch.autograd.grad(g @ v, [leaves[n] for n in names])
        return torch.cat([h.detach().reshape(-1) for h in hv])

    q = torch.cat([torch.randn(params[n].shape, generator=gen).reshape(-1) for n in names])
    q = q.to(params[names[0]].device, params[names[0]].dtype)
    q = q / q.norm()
    size = q.numel()
    cap = max(1, min(max(iters, max_iters or iters), size))
    check = max(1, min(iters, size))
    basis: List[torch.Tensor] = [q]
    alphas: List[float] = []
    betas: List[float] = []
    while True:
        w = hvp(basis[-1])
        alphas.append(float(w @ basis[-1]))
        for b in basis:  # full reorthogonalisation: k is small, exactness matters more than memory
            w = w - (w @ b) * b
        beta = float(w.norm())
        k = len(alphas)
        done = beta < 1e-10 or k >= cap  # an invariant subspace: the Ritz values are exact
        if done or k >= check:
            t = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
            theta, s = np.linalg.eigh(t)
            scale = max(abs(theta[0]), abs(theta[-1]), 1e-30)
            estimate = [0.0 if beta < 1e-10 else beta * abs(s[-1, i]) / scale for i in (-1, 0)]
            if done or max(estimate) <= tol:
                break
            check = min(cap, k + max(1, iters // 2))
        betas.append(beta)
        basis.append(w / beta)
    qs = torch.stack(basis[:k], 1)
    resid = []
    for i in (-1, 0):
        v = qs @ torch.as_tensor(s[:, i], dtype=qs.dtype, device=qs.device)
        resid.append(float((hvp(v) - float(theta[i]) * v).norm()) / scale)
    return Extremes(float(theta[-1]), float(theta[0]), resid[0], resid[1], k, max(resid) <= tol)


def hessian_extremes(model, params, x, y, loss_fn, iters: int, gen: torch.Generator) -> Tuple[float, float]:
    """(largest, smallest) algebraic eigenvalue from exactly `iters` Lanczos steps (no convergence check)."""
    e = lanczos_extremes(model, params, x, y, loss_fn, iters, gen, max_iters=iters, tol=math.inf)
    return e.top, e.bottom


def bn_fed_weights(model) -> Dict[str, int]:
    """Affine weight name -> number of row groups that are each scale-invariant *in the network's
    function* (ics.models.norms.scale_invariant_weights, exact only): every row under BN, ℓp and
    weight norm; the whole weight under LayerNorm; each group's rows under GroupNorm. Batch Renorm
    is left out: its forward depends on ‖w_k‖ through r and d once they open."""
    return scale_invariant_weights(model, exact_only=True)


def normalised_rows(params: Dict[str, torch.Tensor], names, scale: float = 1.0) -> Dict[str, torch.Tensor]:
    """params with each scale-invariant group of rows of the named weights scaled to norm `scale` (a
    list of names, or name -> groups: a list means one group per row): the canonical point of the
    rescaling symmetry (scale 1), the same whatever scale the groups had."""
    groups = names if isinstance(names, dict) else {n: params[n].shape[0] for n in names}
    out = dict(params)
    for n, g in groups.items():
        w = params[n]
        norms = w.reshape(g, -1).norm(dim=1).clamp_min(1e-30)
        out[n] = (w.reshape(g, -1) * (scale / norms[:, None])).reshape(w.shape)
    return out


def along_steps(model, params, g, steps, x, y, loss_fn) -> Dict[str, float]:
    """The loss and gradient at θ + s for each step s (see the module doc): loss min, max and range,
    the largest gradient change (absolute, and relative to ‖g‖), effective β and ‖g‖."""
    g_norm = torch.sqrt(sum((t * t).sum() for t in g.values()))
    losses, changes, betas = [], [], []
    for step in steps:
        loss_k, g_k = loss_and_grad(model, {n: params[n] + step[n] for n in params}, x, y, loss_fn)
        change = torch.sqrt(sum(((g_k[n] - g[n]) ** 2).sum() for n in params))
        dist = torch.sqrt(sum((step[n] ** 2).sum() for n in params)).clamp_min(1e-30)
        losses.append(loss_k)
        changes.append(change)
        betas.append(change / dist)
    losses_t, changes_t = torch.stack(losses), torch.stack(changes)
    values = torch.stack(
        [
            losses_t.min(),
            losses_t.max(),
            changes_t.max(),
            changes_t.max() / g_norm.clamp_min(1e-30),
            torch.stack(betas).max(),
            g_norm,
        ]
    ).tolist()
    out = dict(zip(["loss_min", "loss_max", "grad_change", "grad_change_rel", "beta", "grad_norm"], values))
    out["loss_range"] = out["loss_max"] - out["loss_min"]
    return out


def along_gradient(model, params, g, x, y, loss_fn, etas) -> Dict[str, float]:
    """Loss range, gradient change and effective β along θ − η g for each η (see the module doc)."""
    out = along_steps(model, params, g, [{n: -eta * g[n] for n in params} for eta in etas], x, y, loss_fn)
    return {k: out[k] for k in ("loss_range", "grad_change_rel", "beta")}


@INSTRUMENTS.register("landscape")
class LossLandscape(Instrument):
    key = "landscape"

    def __init__(self, cfg, ctx: RunContext):
        super().__init__(cfg, ctx)
        self.gen = torch.Generator().manual_seed(ctx.seed * 31 + 7)
        self.bn_fed = bn_fed_weights(ctx.model)

    def wants_batch(self, step: int) -> bool:
        return step % self.cfg.every == 0

    def observe_batch(self, batch: Batch) -> None:
        ctx = self.ctx
        params = live_params(ctx.model)
        _, g = loss_and_grad(ctx.model, params, batch.x, batch.y, ctx.loss_fn)
        lr = lr_of(ctx.optimizer)
        if self.cfg.direction == "update":
            delta = optimizer_update(ctx.model, ctx.optimizer, g)
            steps = [{n: s * delta[n] for n in params} for s in self.cfg.multipliers]
        else:
            steps = [{n: -lr * m * g[n] for n in params} for m in self.cfg.multipliers]
        out = {
            f"landscape/{k}": v
            for k, v in along_steps(ctx.model, params, g, steps, batch.x, batch.y, ctx.loss_fn).items()
        }
        if self.cfg.scale_invariant and self.bn_fed:
            canon = normalised_rows(params, self.bn_fed)
            _, g_hat = loss_and_grad(ctx.model, canon, batch.x, batch.y, ctx.loss_fn)
            si = along_gradient(
                ctx.model, canon, g_hat, batch.x, batch.y, ctx.loss_fn, [lr * m for m in self.cfg.multipliers]
            )
            out.update({f"landscape/si/{k}": v for k, v in si.items()})
            for c in self.cfg.gauge_scales:  # the same function at other row norms: how much the unit gauge decides
                at = si if c == 1 else self.at_scale(params, c, batch, lr)
                out.update({f"landscape/gauge/{c:g}/{k}": at[k] for k in ("loss_range", "grad_change_rel", "beta")})
        if self.cfg.hessian:
            e = lanczos_extremes(
                ctx.model,
                params,
                batch.x,
                batch.y,
                ctx.loss_fn,
                self.cfg.power_iters,
                self.gen,
                self.cfg.lanczos_max_iters,
                self.cfg.lanczos_tol,
            )
            out["landscape/top_eig"], out["landscape/min_eig"] = e.top, e.bottom
            out["landscape/top_eig_resid"], out["landscape/min_eig_resid"] = e.top_resid, e.bottom_resid
            out["landscape/lanczos_steps"], out["landscape/eig_converged"] = float(e.steps), float(e.converged)
            out["landscape/two_over_lr"] = 2.0 / lr
        self.emit(batch.step, out)

    def at_scale(self, params, c: float, batch: Batch, lr: float) -> Dict[str, float]:
        ctx = self.ctx
        point = normalised_rows(params, self.bn_fed, c)
        _, g = loss_and_grad(ctx.model, point, batch.x, batch.y, ctx.loss_fn)
        return along_gradient(
            ctx.model, point, g, batch.x, batch.y, ctx.loss_fn, [lr * m for m in self.cfg.multipliers]
        )

    def layout(self) -> dict:
        charts = {
            "loss range along the step (min, max)": ["Multiline", [r"landscape/loss_(min|max)$"]],
            "gradient predictiveness ‖∇L(θ_k) − g‖": ["Multiline", [r"landscape/grad_change$"]],
            "effective β-smoothness": ["Multiline", [r"landscape/beta$"]],
        }
        if self.cfg.scale_invariant and self.bn_fed:
            charts["scale-invariant (normalised rows at unit norm): loss range, β"] = [
                "Multiline",
                [r"landscape/si/(loss_range|beta)$"],
            ]
            if self.cfg.gauge_scales:
                charts["the same at row norms landscape.gauge_scales: loss range, β"] = [
                    "Multiline",
                    [r"landscape/gauge/.*/(loss_range|beta)$"],
                ]
        if self.cfg.hessian:
            charts["Hessian λ_max (and λ_min) vs 2/lr"] = ["Multiline", [r"landscape/(top_eig|min_eig|two_over_lr)$"]]
        return {"Loss landscape (Santurkar et al. 2018, §3.2)": charts}

    def meta(self) -> Dict[str, Any]:
        return {
            "direction": self.cfg.direction,
            "multipliers": list(self.cfg.multipliers),
            "hessian": self.cfg.hessian,
            "gauge_scales": list(self.cfg.gauge_scales) if self.cfg.scale_invariant and self.bn_fed else [],
            "scale_invariant": bool(self.cfg.scale_invariant and self.bn_fed),
        }

    def summary(self) -> Dict[str, Any]:
        out = {}
        for m in (
            "loss_range",
            "grad_change_rel",
            "beta",
            "top_eig",
            "min_eig",
            "top_eig_resid",
            "min_eig_resid",
            "eig_converged",
            "si/loss_range",
            "si/grad_change_rel",
            "si/beta",
        ):
            s = self.series.get(f"landscape/{m}")
            if s:
                out[m] = s[-1]
                out[f"{m}_mean"] = float(np.nanmean(s))
        for c in self.cfg.gauge_scales:  # mean over the run at each row norm: the range a conclusion must hold over
            for m in ("loss_range", "grad_change_rel", "beta"):
                s = self.series.get(f"landscape/gauge/{c:g}/{m}")
                if s:
                    out[f"{m}_mean_at_norm_{c:g}"] = float(np.nanmean(s))
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.gen.set_state(state["gen"])
