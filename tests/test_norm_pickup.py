"""A new normaliser needs no test edit: one registered here for the test's duration (a throwaway RMSNorm
without a bias, declared like any module of ics/models/norms/) is in every cross-cutting suite's case
list, passes the schema's and pre-run checks by its name, and the suites' checks run on it."""

from __future__ import annotations

import norm_cases
import pytest
import test_instruments
import test_norms
import torch
from torch import nn

from ics.config import Config, MLPConfig, TrainerConfig, validate
from ics.config.norms import Norm, declared
from ics.registry import NORMS

NAME = "throwaway_rms"


class ThrowawayRMS(nn.Module):
    def __init__(self, features: int, eps: float):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(features))

    def forward(self, x):
        return (
            x
            * torch.rsqrt(x.pow(2).mean(dim=tuple(range(1, x.dim())), keepdim=True) + self.eps)
            * self.weight.view((1, -1) + (1,) * (x.dim() - 2))
        )


@pytest.fixture
def throwaway(monkeypatch):
    """Registered as a module registers (NORMS) and declared as its DECLARED is, until the test ends."""
    assert NAME not in NORMS and NAME not in declared()
    monkeypatch.setitem(NORMS, NAME, lambda features, spatial, cfg: ThrowawayRMS(features, cfg.bn_eps))
    monkeypatch.setitem(
        declared(),
        NAME,
        Norm(name=NAME, doc="a test's RMSNorm", batch_statistics=False, eval_mode="same", invariance="layer"),
    )
    return NAME


def test_a_new_normaliser_is_in_every_cross_cutting_case_list(throwaway):
    assert throwaway in norm_cases.normalisers() and throwaway in norm_cases.invariant()
    assert throwaway in norm_cases.names(eval_mode="same") and throwaway not in norm_cases.names(eval_mode="running")
    assert throwaway in test_instruments.cases().values()  # no-interference of the instruments
    assert throwaway in norm_cases.beyond_bn()  # resume bit-identity


def test_the_cross_cutting_checks_run_on_a_new_normaliser(throwaway, mnist_root):
    test_norms.test_batch_statistics_are_as_declared(throwaway)
    test_norms.test_eval_mode_same_is_the_training_function(throwaway)
    test_norms.test_declared_invariance_holds(throwaway)
    test_norms.test_scale_invariant_landscape_does_not_move_when_invariant_groups_are_rescaled(throwaway)
    test_norms.test_batch_of_one_is_refused_for_every_batch_statistics_norm(throwaway)
    test_norms.test_bn_stats_and_bn_noise_are_refused_without_batch_statistics(throwaway)
    test_norms.test_resume_is_bit_identical(mnist_root, throwaway)


def test_a_wrong_declaration_is_caught_by_the_cross_cutting_checks(throwaway, monkeypatch):
    """The checks test the declaration against the module: declaring batch statistics, or an exact
    per-row invariance, for this RMSNorm fails them."""
    spec = declared()[throwaway]
    monkeypatch.setitem(declared(), throwaway, Norm(**{**vars(spec), "batch_statistics": True}))
    with pytest.raises(AssertionError):
        test_norms.test_batch_statistics_are_as_declared(throwaway)
    with pytest.raises(Exception, match="batch_size=1 is invalid"):
        validate(Config(model=MLPConfig(norm=throwaway), trainer=TrainerConfig(batch_size=1)))
    monkeypatch.setitem(declared(), throwaway, Norm(**{**vars(spec), "invariance": "row"}))
    with pytest.raises(AssertionError):
        test_norms.test_declared_invariance_holds(throwaway)
