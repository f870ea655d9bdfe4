"""Running train loss/accuracy over a logging window, with no host sync per step."""

from __future__ import annotations

from typing import Dict, List, Optional

import torch


class Meter:
    """Per step it only keeps references to the detached loss and logits (no tensor ops, no sync);
    every FOLD steps, and when the window is read, they are reduced on the device, so memory stays
    bounded whatever trainer.log_every is. Its state (the folded sums and the pending steps) is part
    of a checkpoint, so a resumed run reduces exactly the same numbers in the same order."""

    FOLD = 500

    def __init__(self, classify: bool = True):
        self.classify = classify  # regression has no accuracy: acc reads NaN
        self.reset()

    def reset(self) -> None:
        self.losses: List[torch.Tensor] = []
        self.logits: List[torch.Tensor] = []
        self.targets: List[torch.Tensor] = []
        self.sums: Optional[torch.Tensor] = None  # (loss sum, loss max, correct) of folded steps
        self.steps = self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss)
        if self.classify:  # regression keeps only the losses
            self.logits.append(logits)
        self.targets.append(y)
        if len(self.losses) >= self.FOLD:
            self._fold()

    def _fold(self) -> None:
        losses = torch.stack(self.losses)
        if self.classify:
            correct = (torch.cat(self.logits).argmax(1) == torch.cat(self.targets)).sum().to(losses.dtype)
        else:
            correct = torch.full((), float("nan"), dtype=losses.dtype, device=losses.device)
        # max propagates NaN, so a divergence anywhere in the window is seen
        part = torch.stack([losses.sum(), losses.max(), correct])
        if self.sums is None:
            self.sums = part
        else:
            self.sums = torch.stack(
                [self.sums[0] + part[0], torch.maximum(self.sums[1], part[1]), self.sums[2] + part[2]]
            )
        self.steps += len(self.losses)
        self.count += sum(t.shape[0] for t in self.targets)
        self.losses, self.logits, self.targets = [], [], []

    def read(self) -> Dict[str, float]:
        if self.losses:
            self._fold()
        total, worst, correct = self.sums.tolist()  # sync point
        out = {"loss": total / self.steps, "loss_max": worst, "acc": correct / self.count}
        self.reset()
        return out

    def state_dict(self) -> dict:
        cpu = lambda ts: [t.detach().cpu() for t in ts]  # noqa: E731
        return {
            "losses": cpu(self.losses),
            "logits": cpu(self.logits),
            "targets": cpu(self.targets),
            "sums": None if self.sums is None else self.sums.detach().cpu(),
            "steps": self.steps,
            "count": self.count,
        }

    def load_state_dict(self, s: dict, device) -> None:
        dev = lambda ts: [t.to(device) for t in ts]  # noqa: E731
        self.losses, self.logits, self.targets = dev(s["losses"]), dev(s["logits"]), dev(s["targets"])
        self.sums = None if s["sums"] is None else s["sums"].to(device)
        self.steps, self.count = s["steps"], s["count"]
