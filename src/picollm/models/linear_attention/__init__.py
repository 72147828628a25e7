"""The linear-attention family in pure PyTorch: linear attention, GLA and Gated DeltaNet.

Importing this package registers the attention kinds ``linear``, ``gla`` and
``gated_deltanet`` (see ``layers``). Each op comes in three forms with one signature, on
heads-first tensors (B, H, T, D): ``naive_*`` (the token-by-token oracle), ``chunk_*`` (the
chunkwise-parallel form for training, linear in T) and ``step_*`` (decoding with a carried
state).
"""

from picollm.models.linear_attention.layers import (
    GatedDeltaNet,
    GatedLinearAttention,
    LinearAttention,
    RecurrentCache,
)
from picollm.models.linear_attention.ops_gdn import (
    chunk_gated_delta_rule,
    naive_gated_delta_rule,
    step_gated_delta_rule,
)
from picollm.models.linear_attention.ops_gla import chunk_gla, naive_gla, step_gla
from picollm.models.linear_attention.ops_linear import (
    chunk_linear_attention,
    naive_linear_attention,
    step_linear_attention,
)
from picollm.models.linear_attention.short_conv import ShortConvolution

__all__ = [
    "GatedDeltaNet",
    "GatedLinearAttention",
    "LinearAttention",
    "RecurrentCache",
    "ShortConvolution",
    "chunk_gated_delta_rule",
    "chunk_gla",
    "chunk_linear_attention",
    "naive_gated_delta_rule",
    "naive_gla",
    "naive_linear_attention",
    "step_gated_delta_rule",
    "step_gla",
    "step_linear_attention",
]
