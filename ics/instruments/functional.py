"""Gradients and optimiser steps on copies: the tools of the instruments that ask "what if".

Everything here reads the live model and optimiser and changes neither: parameters are passed to
`torch.func.functional_call` as detached copies, BN buffers as clones (so the running statistics
a training-mode pass would update are the clones'), noise layers are switched off (or replay the
step's own draw, for gradient ICS), and the
optimiser's step is taken by a twin built from a deep copy of its state.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Dict, List, Tuple

import torch
from torch import nn
from torch.func import functional_call

from ics.models import noise_off

Params = Dict[str, torch.Tensor]


def live_params(model: nn.Module) -> Params:
    return {n: p.detach() for n, p in model.named_parameters()}


def loss_and_grad(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn,
    create_graph: bool = False,
    noise: bool = False,
) -> Tuple[torch.Tensor, Params]:
    """L(θ; x, y) and ∇θ L at θ = params, in the model's current mode (training: BN uses the
    batch's statistics), with no effect on the live model. Noise layers are off unless `noise`
    (then the caller replays the step's draw: ics.models.noise_replay)."""
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    with nullcontext() if noise else noise_off(model), torch.enable_grad():
        out = functional_call(model, {**leaves, **buffers}, (x,))
        loss = loss_fn(out, y)
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph)
    if create_graph:
        return loss, dict(zip(leaves, grads)), leaves
    return loss.detach(), {n: g.detach() for n, g in zip(leaves, grads)}


def optimizer_update(model: nn.Module, opt: torch.optim.Optimizer, grads: Params) -> Params:
    """Δθ = θ_{t+1} − θ_t: the update `opt` would take with these gradients (momentum, Adam state,
    weight decay included), computed by a twin optimiser on copies."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    groups, copies = [], {}
    for g in opt.param_groups:
        ps = []
        for p in g["params"]:
            c = p.detach().clone().requires_grad_(True)
            c.grad = grads[name_of[id(p)]].clone()
            copies[name_of[id(p)]] = c
            ps.append(c)
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ps})
    twin = type(opt)(groups)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))  # deep: the live state tensors stay untouched
    with torch.no_grad():
        twin.step()
    live = live_params(model)
    return {n: (c.detach() - live[n]) for n, c in copies.items()}


def flat(tensors: Params, names: List[str]) -> torch.Tensor:
    return torch.cat([tensors[n].reshape(-1) for n in names])


def lr_of(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])
