"""Mini-batch indices for a dataset that lives on the device as one tensor.

All sampling randomness comes from one private generator, and the sampler's position is part of
its state (`state_dict`), so a checkpoint captures exactly where the data stream is.
"""

from __future__ import annotations

import torch


class IndexSampler:
    """`epoch`: a fresh randperm each epoch, no replacement. `replacement`: i.i.d. uniform draws."""

    BLOCK = 256  # replacement mode: batches drawn per generator call

    def __init__(self, n: int, batch_size: int, seed: int, mode: str = "epoch", device: torch.device | str = "cpu"):
        self.n, self.batch_size, self.mode = n, batch_size, mode
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)  # CPU generator: identical streams on CPU and GPU
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        if self.mode == "replacement":
            # drawn BLOCK batches at a time: one host-to-device copy per block, not per step
            if self.perm is None or self.pos == self.perm.shape[0]:
                block = torch.randint(0, self.n, (self.BLOCK, self.batch_size), generator=self.gen)
                self.perm, self.pos = block.to(self.device), 0
            self.pos += 1
            return self.perm[self.pos - 1]
        if self.perm is None or self.pos + self.batch_size > self.n:
            # drop the last partial batch: every step sees exactly batch_size examples (BN statistics)
            self.perm = torch.randperm(self.n, generator=self.gen).to(self.device)
            self.pos = 0
            self.epoch += 1
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {
            "gen": self.gen.get_state(),
            "perm": None if self.perm is None else self.perm.cpu(),
            "pos": self.pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)
        self.pos, self.epoch = state["pos"], state["epoch"]
