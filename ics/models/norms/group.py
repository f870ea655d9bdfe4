"""model.norm=group: GroupNorm (Wu & He 2018, eq. 1 with Sᵢ a group of channels).

Per example, the block's channels split into G = min(model.norm_groups, channels) groups of
consecutive channels; each group is normalised over its channels × height × width:
y = γ·(x − μ_g)/√(σ²_g + ε) + β, γ, β per channel. Nothing depends on the batch. On a Linear block
(an MLP, the CNN's head) a group is G consecutive units of one example (G = 1 would be LayerNorm);
G must divide the block's width and leave at least 2 units per group (one unit normalised alone is
the constant β). The output is invariant to scaling the rows of one group together.
"""

from __future__ import annotations

from torch import nn

from ics.config import ConfigError
from ics.config.norms import Norm
from ics.registry import NORMS

DECLARED = Norm(
    name="group",
    doc="GroupNorm (Wu & He 2018)",
    batch_statistics=False,
    eval_mode="same",
    invariance="group",
    keys={
        "norm_groups": (
            32,
            "groups per block (Wu & He's 32), capped at the block's channels; must divide every block's width",
            ("ge", 1),
        )
    },
)


@NORMS.register("group")
def group_norm(features: int, spatial: bool, cfg) -> nn.Module:
    groups = min(cfg.norm_groups, features)
    what = f"{features} channels" if spatial else f"{features} units"
    if features % groups:
        raise ConfigError(
            f"model.norm_groups={cfg.norm_groups} is invalid for a block of {what}: the group count "
            f"(capped at the block's width) must divide every block's width"
        )
    if not spatial and features // groups < 2:
        raise ConfigError(
            f"model.norm_groups={cfg.norm_groups} is invalid for a Linear block of {what}: a group "
            f"needs >= 2 units (allowed: a divisor of {features} up to {features // 2})"
        )
    return nn.GroupNorm(groups, features, eps=cfg.bn_eps)
