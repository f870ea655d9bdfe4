"""model.norm=rms (ics/models/norms/rms.py): RMSNorm against torch's own, per example and per channel;
what every normaliser is tested for (invariance, evaluation mode, resume, instruments) comes from its
declaration in the cross-cutting tests."""

from __future__ import annotations

import pytest
import torch

from ics.config import CNNConfig, MLPConfig
from ics.models import build_model
from ics.registry import NORMS

pytestmark = pytest.mark.skipif(not hasattr(torch.nn, "RMSNorm"), reason="torch.nn.RMSNorm needs torch >= 2.4")


def test_rms_norm_is_torchs_rms_norm_plus_a_bias():
    torch.manual_seed(0)
    mod = NORMS["rms"](7, False, MLPConfig(norm="rms", bn_eps=1e-6)).double()
    with torch.no_grad():
        mod.weight.uniform_(0.5, 2), mod.bias.uniform_(-1, 1)
    ref = torch.nn.RMSNorm(7, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(mod.weight)
    x = torch.randn(11, 7, dtype=torch.float64) * 3 + 1
    assert torch.allclose(mod(x) - mod.bias, ref(x), atol=1e-12, rtol=0)


def test_rms_norm_on_a_conv_block_is_over_channels_height_and_width_with_per_channel_gamma():
    torch.manual_seed(0)
    mod = NORMS["rms"](4, True, CNNConfig(norm="rms", bn_eps=1e-6)).double()
    with torch.no_grad():
        mod.weight.uniform_(0.5, 2), mod.bias.uniform_(-1, 1)
    ref = torch.nn.RMSNorm([4, 5, 5], eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(mod.weight[:, None, None].expand(4, 5, 5))
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64) + 0.5
    assert torch.allclose(mod(x) - mod.bias[:, None, None], ref(x), atol=1e-12, rtol=0)


def test_rms_norm_does_not_centre():
    """Unlike LayerNorm, a shift of an example's units moves the output."""
    mod = build_model(MLPConfig(norm="rms", widths=[8]), (6,), 3).double().blocks.h1.norm
    z = torch.randn(5, 8, dtype=torch.float64)
    assert not torch.allclose(mod(z + 2.0), mod(z), atol=1e-3)
    assert torch.allclose(mod(z * 3.0), mod(z), atol=1e-4)  # ε = 1e-5 against mean(z²) ≈ 1
