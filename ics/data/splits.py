"""Stratified index draws (the probe set), each from its own generator: the same seed gives the
same subset whatever the training seed and whatever the global RNG has done."""

from __future__ import annotations

import torch


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n indices drawn without replacement, each class getting its share of n; sorted.

    Shares are n * class_fraction rounded by largest remainder (ties go to the lower class id),
    so the total is exactly n.
    """
    labels = labels.detach().cpu().reshape(-1)
    if n >= len(labels):
        return torch.arange(len(labels))
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = largest_remainder(counts, max(n, 0))
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c, q in zip(classes.tolist(), quotas.tolist()):
        members = torch.nonzero(labels == c).reshape(-1)
        picks.append(members[torch.randperm(len(members), generator=gen)[:q]])
    return torch.sort(torch.cat(picks)).values


def largest_remainder(counts: torch.Tensor, n: int) -> torch.Tensor:
    exact = counts.double() * n / counts.sum()
    quotas = exact.floor().long()
    left = n - int(quotas.sum())
    # Stable sort on the negated remainders: biggest first, ties by class order.
    order = torch.sort(-(exact - quotas), stable=True).indices
    quotas[order[:left]] += 1
    return quotas
