"""The normalisers the cross-cutting tests run over, read from their declarations (ics/config/norms.py,
`DECLARED` in each module of ics/models/norms/): a new normaliser is in every list below without a test
edit, and tests/test_norm_pickup.py shows it with a throwaway one."""

from __future__ import annotations

from typing import List

from ics.config.norms import declared


def names(**rules) -> List[str]:
    """Every declared normaliser whose declaration has these values (batch_statistics=True, ...)."""
    return [n for n, norm in declared().items() if all(getattr(norm, k) == v for k, v in rules.items())]


def invariant() -> List[str]:
    """Those that make some scaling of the affine weight an invariance (of the function or the gradient)."""
    return [n for n, norm in declared().items() if norm.invariance is not None]


def normalisers() -> List[str]:
    """Every declared normaliser but none (the baseline, in every test of its own)."""
    return [n for n in declared() if n != "none"]


def beyond_bn() -> List[str]:
    """Every declared normaliser but none and batch (BN's own tests cover it, e.g. test_train's resume)."""
    return [n for n in normalisers() if n != "batch"]
