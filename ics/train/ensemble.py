"""Several seeds of one config trained as one vectorised model (an ensemble of K members).

Each member is built exactly as a single run builds it (ics.train.loop.Trainer): torch.manual_seed(seed),
then build_model(..., seed=seed) (noise and dropout generators seeded from it), the same optimiser, and
an IndexSampler seeded with seed + SAMPLER_SEED_OFFSET, so each member sees its own data order. The
members' parameters and buffers are stacked along a leading member axis (torch.func.stack_module_state)
and one training step runs all members at once: torch.func.vmap over functional_call, so each Linear
becomes one batched matmul and each normaliser takes its batch statistics per member.

- Running statistics are stacked buffers that the normalisers update in place under vmap, per member.
  num_batches_tracked is the same for every member (they step together), so the vectorised forward
  reads one shared counter (Batch Renorm's warm-up and momentum=None read it as a number, which a
  batched tensor cannot be) and the other members' counters follow after each step.
- One optimiser over the stacked parameters: SGD, momentum and Adam update elementwise, so it is K
  optimisers (Adam's step count is the same for all members).
- Noise and dropout: each member draws from its own generators, outside vmap, exactly what its
  single run would draw (same calls, shapes, order); the vectorised forward applies the draws. vmap
  runs with randomness="error", so no other random draw can slip in.
- Results equal the single runs' up to float rounding (a batched matmul sums in another order than
  a matmul): the measured differences are pinned in tests/test_ensemble.py.

Member views: `members[k]` is an ordinary model whose parameters and buffers are views into the
stacked storage (no copy per step), so evaluation, probes and checkpoints can run on member k with
the usual code; `member_state_dict(k)` gives the single run's model/optimizer/sampler layout.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ics.config import Config, ConfigError, validate
from ics.data import DataBundle, load_data
from ics.data.sampler import IndexSampler
from ics.models import Block, Dropout, ScaleShiftNoise, Stochastic, build_model
from ics.train.build import SAMPLER_SEED_OFFSET, check_fits
from ics.train.device import resolve_device
from ics.train.optim import build_optimizer

ELEMENTWISE_OPTIMIZERS = ("sgd", "momentum", "adam")  # one optimiser over the stack = one per member
COUNTER = "num_batches_tracked"


class _Drawn(nn.Module):
    """Stands in for a Stochastic module inside the vectorised forward: applies the member's draw
    (made outside vmap by `Ensemble._draw`) with the same operations as Dropout / ScaleShiftNoise."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p  # dropout's p; 0: scale-shift noise
        self.drawn: Tuple[torch.Tensor, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.use(x, self.drawn)

    def use(self, x: torch.Tensor, drawn: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.p:
            return x * drawn[0] / (1 - self.p)
        s, m = drawn
        return x * s + m


def batched_ok(net: nn.Module) -> bool:
    """Whether the hand-batched forward covers this model: a Net of Linear blocks (MLP, DLN), each
    without a normaliser or with torch's BN, no pooling."""
    blocks = getattr(net, "blocks", None)
    return (
        bool(getattr(net, "flatten_first", False))
        and blocks is not None
        and all(
            isinstance(b.affine, nn.Linear) and b.pool is None and (b.norm is None or type(b.norm) is nn.BatchNorm1d)
            for b in blocks.values()
        )
    )


def batched_config(cfg: Config) -> bool:
    """Whether the members of this config take the hand-batched step (batched_ok, read from the
    config instead of a built model; tests/test_ensemble.py checks that the two agree)."""
    return cfg.model.name in ("mlp", "dln") and cfg.model.norm in ("batch", "none")


def _refuse(cfg: Config, seeds: Sequence[int]) -> None:
    if not seeds:
        raise ConfigError("an ensemble needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"ensemble seeds {list(seeds)} are invalid: each seed at most once")
    if cfg.optim.name not in ELEMENTWISE_OPTIMIZERS:
        raise ConfigError(
            f"optim={cfg.optim.name} cannot train as an ensemble: allowed "
            f"{', '.join(ELEMENTWISE_OPTIMIZERS)} (optimisers that update elementwise)"
        )


def member_config(cfg: Config, seed: int) -> Config:
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, seed=seed))


class Ensemble:
    """K members of one config that differ only in trainer.seed, trained in lockstep."""

    def __init__(
        self,
        cfg: Config,
        seeds: Sequence[int],
        data: Optional[DataBundle] = None,
        path: str = "auto",
        *,
        members: Optional[Sequence[nn.Module]] = None,
        samplers: Optional[Sequence[IndexSampler]] = None,
        optimizers: Optional[Sequence[torch.optim.Optimizer]] = None,
    ):
        """members, samplers, optimizers: the members as their single runs built them (and perhaps
        resumed them: ics.train.group), instead of building them here; their optimisers' states are
        merged into the stack's, and from then on show the stack's state (views)."""
        validate(cfg)
        seeds = [int(s) for s in seeds]
        _refuse(cfg, seeds)
        self.cfg, self.seeds, self.k = cfg, seeds, len(seeds)
        self.device = resolve_device(cfg.trainer.device)
        self.data = data if data is not None else load_data(cfg.data, self.device)
        check_fits(cfg, self.data)
        t = cfg.trainer
        if members is None and isinstance(t.threads, int) and self.device.type == "cpu":
            torch.set_num_threads(t.threads)
        self.regression = self.data.task == "regression"
        self.loss_fn = F.mse_loss if self.regression else F.cross_entropy
        if members is None:
            self.members: List[nn.Module] = []
            for seed in seeds:  # as build_trainer: the init draws from the global RNG, seeded per member
                validate(member_config(cfg, seed))
                torch.manual_seed(seed)
                model = build_model(cfg.model, self.data.in_shape, self.data.out_features, seed=seed)
                self.members.append(model.to(self.device).train())
            self.samplers = [
                IndexSampler(
                    self.data.x_train.shape[0], t.batch_size, seed + SAMPLER_SEED_OFFSET, t.sampler, self.device
                )
                for seed in seeds
            ]
        else:
            if samplers is None or len(members) != self.k or len(samplers) != self.k:
                raise ConfigError(f"an ensemble of {self.k} seeds needs {self.k} members and samplers")
            self.members, self.samplers = list(members), list(samplers)
        self.params, buffers = stack_module_state(self.members)
        self.counters = {n: b for n, b in buffers.items() if n.rsplit(".", 1)[-1] == COUNTER}
        self.buffers = {n: b for n, b in buffers.items() if n not in self.counters}
        self.opt = build_optimizer(self.params.values(), cfg.optim)
        self.member_opts = list(optimizers) if optimizers is not None else None
        self.step = 0
        self._base, self._slots = self._functional_copy()
        self._shapes = self._stochastic_shapes()
        self._bind_members()
        if self.member_opts is not None:
            self._merge_optimizer_states([o.state_dict() for o in self.member_opts])
        self._vstep = vmap(self._member_forward, in_dims=(0, 0, None, 0, 0, 0), randomness="error")
        # "batched": the hand-batched forward of MLPs and DLNs (less per-step overhead than vmap)
        self.path = ("batched" if batched_ok(self.members[0]) else "vmap") if path == "auto" else path
        if self.path == "batched" and not batched_ok(self.members[0]):
            raise ConfigError(
                f"model.name={cfg.model.name} with model.norm={cfg.model.norm} has no batched forward: "
                "allowed path=vmap"
            )

    # --- the vectorised step ----------------------------------------------------------------------
    def _functional_copy(self) -> Tuple[nn.Module, Dict[str, _Drawn]]:
        """A parameter-free (meta) copy of member 0 to run functional_call on, its noise and dropout
        modules replaced by slots that apply the draws passed in."""
        base = copy.deepcopy(self.members[0]).to("meta")
        slots: Dict[str, _Drawn] = {}
        for name, mod in list(base.named_modules()):
            if isinstance(mod, Stochastic):
                slot = _Drawn(mod.p if isinstance(mod, Dropout) else 0.0)
                parent, _, leaf = name.rpartition(".")
                setattr(base.get_submodule(parent), leaf, slot)
                slots[name] = slot
        return base, slots

    def _stochastic_shapes(self) -> Dict[str, torch.Size]:
        """The input shape of each noise/dropout module in a training step (the batch size is fixed):
        one shape-only forward of a meta copy with its noise switched off."""
        if not self._slots:
            return {}
        probe = copy.deepcopy(self.members[0]).to("meta")
        shapes: Dict[str, torch.Size] = {}
        handles = []
        for name, mod in probe.named_modules():
            if isinstance(mod, Stochastic):
                mod.active = False
                handles.append(
                    mod.register_forward_pre_hook(lambda m, args, name=name: shapes.__setitem__(name, args[0].shape))
                )
        with torch.no_grad():
            probe(torch.empty((self.cfg.trainer.batch_size,) + tuple(self.data.in_shape), device="meta"))
        for h in handles:
            h.remove()
        return shapes

    def _draw(self) -> Dict[str, Tuple[torch.Tensor, ...]]:
        """Each member's noise/dropout draws for this step, from its own generators, stacked."""
        out: Dict[str, Tuple[torch.Tensor, ...]] = {}
        dtype = self.data.x_train.dtype
        for name, shape in self._shapes.items():
            draws: List[Tuple[torch.Tensor, ...]] = []
            for member in self.members:
                mod = member.get_submodule(name)
                if isinstance(mod, Dropout):  # the same calls as Dropout.forward
                    keep = (torch.rand(shape, generator=mod.gen) >= mod.p).to(self.device, dtype)
                    draws.append((keep,))
                else:
                    assert isinstance(mod, ScaleShiftNoise)
                    s, m = mod.draw(shape, shape[1])
                    draws.append((s.to(self.device, dtype), m.to(self.device, dtype)))
            out[name] = tuple(torch.stack(parts) for parts in zip(*draws))
        return out

    def _member_forward(self, params, buffers, counters, drawn, x, y):
        for name, slot in self._slots.items():
            slot.drawn = drawn[name]
        try:
            out = functional_call(self._base, (params, {**buffers, **counters}), (x,))
        finally:
            for slot in self._slots.values():
                slot.drawn = ()
        return self.loss_fn(out, y), out

    def _batched_forward(self, x: torch.Tensor, y: torch.Tensor, drawn) -> Tuple[torch.Tensor, torch.Tensor]:
        """The MLP/DLN forward of all members with activations laid out (K, features, B): each Linear
        is one batched matmul W·h, and each BN is one F.batch_norm over K·features channels (its
        statistics over the B examples of each member, its running statistics the stacked buffers,
        updated in place), with no layout copy between layers."""
        p, net = self.params, self.members[0]
        blocks: nn.ModuleDict = net.blocks  # type: ignore[assignment]  # a Net (batched_ok)
        h = x.flatten(2).transpose(1, 2)  # (K, in, B): a view; bmm reads it transposed
        k, b = h.shape[0], h.shape[2]
        for name, module in blocks.items():
            block, pre = cast(Block, module), f"blocks.{name}."
            w = p[pre + "affine.weight"]
            h = (
                torch.baddbmm(p[pre + "affine.bias"].unsqueeze(2), w, h)
                if pre + "affine.bias" in p
                else torch.bmm(w, h)
            )
            if block.norm is not None:
                norm, units = cast(nn.BatchNorm1d, block.norm), h.shape[1]
                counter = self.counters[pre + "norm." + COUNTER]
                counter.add_(1)
                f = 1.0 / float(counter[0]) if norm.momentum is None else norm.momentum  # as _BatchNorm.forward
                h = F.batch_norm(
                    h.reshape(1, k * units, b),
                    self.buffers[pre + "norm.running_mean"].view(-1),
                    self.buffers[pre + "norm.running_var"].view(-1),
                    p[pre + "norm.weight"].view(-1),
                    p[pre + "norm.bias"].view(-1),
                    True,
                    f,
                    norm.eps,
                ).view(k, units, b)
            h = block.act(self._apply_drawn(f"blocks.{name}.noise", h, drawn))
            h = self._apply_drawn(f"blocks.{name}.dropout", h, drawn)  # after the nonlinearity, as Block
        out = torch.baddbmm(p["out.bias"].unsqueeze(2), p["out.weight"], h)  # (K, out, B)
        if self.regression:
            loss = ((out - y.transpose(1, 2)) ** 2).flatten(1).mean(1)
        else:
            loss = F.cross_entropy(out, y, reduction="none").mean(1)
        return loss, out.transpose(1, 2)

    def _apply_drawn(self, slot: str, h: torch.Tensor, drawn) -> torch.Tensor:
        if slot not in drawn:
            return h
        return self._slots[slot].use(h, tuple(t.transpose(1, 2) for t in drawn[slot]))  # drawn as (K, B, F)

    def next_batches(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each member's next mini-batch from its own sampler: x (K, B, ...), y (K, B[, out])."""
        idx = torch.cat([s.next() for s in self.samplers])  # one gather: (K·B) rows, then split by member
        x, y = self.data.x_train.index_select(0, idx), self.data.y_train.index_select(0, idx)
        return x.view(self.k, -1, *x.shape[1:]), y.view(self.k, -1, *y.shape[1:])

    def train_step(
        self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step of every member (on its next batch unless x, y are given). Returns the
        members' losses (K,) and outputs (K, B, out), detached, for the meters."""
        if x is None or y is None:
            x, y = self.next_batches()
        if self.path == "batched":
            loss, out = self._batched_forward(x, y, self._draw())
        else:
            shared = {n: c[0] for n, c in self.counters.items()}  # the same in every member
            loss, out = self._vstep(self.params, self.buffers, shared, self._draw(), x, y)
            with torch.no_grad():
                for c in self.counters.values():
                    c[1:].add_(1)  # member 0's counter was advanced by the forward
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # member k's parameters get exactly d loss_k (the sum's other terms are 0)
        self.opt.step()
        self.sync_member_optimizers()  # (binds after the step that created the state; else nothing)
        self.step += 1
        return loss.detach(), out.detach()

    def fit(self, steps: Optional[int] = None) -> None:
        """Train every member up to `steps` (default trainer.steps): the step only, no evaluation."""
        total = self.cfg.trainer.steps if steps is None else steps
        while self.step < total:
            self.train_step()

    # --- members ----------------------------------------------------------------------------------
    def _bind_members(self) -> None:
        """Make each member's parameters and buffers views of the stacked tensors: the optimiser's
        in-place updates and the in-place running statistics show in member k without a copy. The
        member keeps its Parameter objects (its own optimiser and its instruments hold them); only
        their storage moves into the stack."""
        for k, member in enumerate(self.members):
            for name, stacked in self.params.items():
                mod, leaf = _owner(member, name)
                mod._parameters[leaf].data = stacked.detach()[k]  # type: ignore[union-attr]
            for name, stacked in {**self.buffers, **self.counters}.items():
                mod, leaf = _owner(member, name)
                mod._buffers[leaf] = stacked[k]

    def bind_member_grads(self) -> None:
        """Give each member's parameters this step's gradients (views of the stack's), for the
        instruments that read p.grad after an update (the gradient and weight instruments)."""
        for k, member in enumerate(self.members):
            for name, p in member.named_parameters():
                g = self.params[name].grad
                p.grad = g[k] if g is not None else None

    def sync_member_optimizers(self) -> None:
        """Make the members' own optimisers show the stack's state, as views (each member's momentum
        or Adam moments are its slice): what an instrument that replays an update and a member's
        checkpoint read. The stack's state is created at its first step and updated in place after
        that, so this binds once per (re)creation; it is a no-op when nothing changed."""
        if self.member_opts is None:
            return
        stamp = tuple(id(v) for s in self.opt.state.values() for v in s.values())
        if stamp == getattr(self, "_synced", None):
            return
        stacked = list(self.params.values())
        for k, (member, opt) in enumerate(zip(self.members, self.member_opts)):
            own = dict(member.named_parameters())
            opt.state.clear()
            for name, sp in zip(self.params, stacked):
                if sp in self.opt.state:
                    opt.state[own[name]] = {
                        key: (v[k] if torch.is_tensor(v) and v.shape == sp.shape else v)
                        for key, v in self.opt.state[sp].items()
                    }
        self._synced = stamp

    def _merge_optimizer_states(self, states: Sequence[dict]) -> None:
        """The stack's optimiser state from the members' single-run states (per-element entries
        stacked along the member axis, shared ones such as Adam's step count taken from member 0)."""
        shapes = [p.shape for p in self.params.values()]
        merged = {}
        for i, first in states[0]["state"].items():
            merged[i] = {
                key: torch.stack([s["state"][i][key] for s in states])
                if torch.is_tensor(v) and v.shape == shapes[int(i)][1:]
                else v
                for key, v in first.items()
            }
        self.opt.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})
        self.sync_member_optimizers()

    def member_state_dict(self, k: int) -> dict:
        """Member k as its single run's checkpoint holds it: model (with the noise generators'
        states), optimizer and sampler state, each a copy (saving a view would save the whole stack)."""
        view = self.members[k].state_dict()
        model = OrderedDict((n, v.clone() if torch.is_tensor(v) else copy.deepcopy(v)) for n, v in view.items())
        model._metadata = getattr(view, "_metadata", None)  # type: ignore[attr-defined]  # (module versions)
        full = self.opt.state_dict()
        shapes = [p.shape for p in self.params.values()]
        state = {i: {key: _member_slice(v, k, shapes[i]) for key, v in s.items()} for i, s in full["state"].items()}
        return {
            "step": self.step,
            "model": model,
            "optimizer": {"state": state, "param_groups": full["param_groups"]},
            "sampler": self.samplers[k].state_dict(),
        }

    def load_member_state_dicts(self, states: Sequence[dict]) -> None:
        """Continue every member from its own single-run checkpoint state (all at one step)."""
        if len(states) != self.k:
            raise ConfigError(f"{len(states)} member states given for an ensemble of {self.k}")
        steps = {int(s["step"]) for s in states}
        if len(steps) != 1:
            raise ConfigError(f"ensemble members must resume from one step, got steps {sorted(steps)}")
        with torch.no_grad():
            for member, s in zip(self.members, states):
                member.load_state_dict(s["model"])  # copies into the views, i.e. into the stack
        self._merge_optimizer_states([s["optimizer"] for s in states])
        for sampler, s in zip(self.samplers, states):
            sampler.load_state_dict(s["sampler"])
        self.step = steps.pop()


def _owner(model: nn.Module, name: str) -> Tuple[nn.Module, str]:
    prefix, _, leaf = name.rpartition(".")
    return (model.get_submodule(prefix) if prefix else model), leaf


def _member_slice(v, k: int, stacked_shape: torch.Size):
    """Member k's part of one optimiser state entry: per-element states (momentum, Adam's moments)
    have the stacked parameter's shape; others (Adam's step count) are shared."""
    if torch.is_tensor(v):
        return v[k].clone() if v.shape == stacked_shape else v.clone()
    return copy.deepcopy(v)
