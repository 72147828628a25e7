"""A causal decoder-only Transformer: GPT-2's shape with RMSNorm and a choice of parts.

    tokens -> token embedding (+ learned or sinusoidal positions) -> dropout
           -> n_blocks x [attention sublayer, MLP sublayer] -> final RMSNorm -> unembedding

Each sublayer is a residual branch. Pre-norm (GPT-2, Llama): ``x = x + f(norm(x))``, with a
final norm before the unembedding. Post-norm (the original Transformer, Vaswani et al. 2017):
``x = norm(x + f(x))``; as in Xiong et al. 2020 (arXiv 2002.04745, fig. 1) it has no final norm
since every block already ends in one. Positions are learned, sinusoidal, rotary (inside
attention) or none at all (NoPE). Attention kinds come from the ``attention`` registry.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.attention import (
    ATTENTIONS,
    INIT_STD,
    build_attention,
    init_linear_,
    residual_init_std,
)
from picollm.models.base import (
    LanguageModel,
    check_choice,
    check_float,
    check_int,
    check_tokens,
)
from picollm.models.norms import RMSNorm
from picollm.models.positions import ROPE_MODES, LearnedPositions, Rotary, SinusoidalPositions

# Linear-attention kinds ("linear", "gla", "gated_deltanet") register themselves on import.
# The package is optional so that this module works with or without it.
if importlib.util.find_spec("picollm.models.linear_attention") is not None:
    importlib.import_module("picollm.models.linear_attention")

MLP_KINDS = ("gelu", "swiglu")
NORM_PLACEMENTS = ("pre", "post")
POSITIONS = ("learned", "sinusoidal", "rope", "nope")


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    block_size: int  # training context; also the number of learned positions
    d_model: int = 64
    n_heads: int = 4
    n_blocks: int = 2
    mlp: str = "gelu"  # gelu | swiglu
    mlp_ratio: float = 4.0  # MLP hidden width / d_model (SwiGLU: 2/3 of it, see SwiGLUMLP)
    norm: str = "pre"  # pre | post
    position: str = "learned"  # learned | sinusoidal | rope | nope
    rope_mode: str = "pairs"  # pairs (Llama) | halves (GPT-NeoX)
    rope_base: float = 10000.0
    attention: str = "softmax"  # a name in the attention registry
    attention_options: dict[str, Any] = field(default_factory=dict)
    tie_weights: bool = True  # the unembedding reuses the token embedding matrix
    dropout: float = 0.0  # on the embeddings and on each residual branch
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        check_int("block_size", self.block_size, 1)
        check_int("d_model", self.d_model, 1)
        check_int("n_heads", self.n_heads, 1)
        check_int("n_blocks", self.n_blocks, 1, 24)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        check_choice("mlp", self.mlp, MLP_KINDS)
        check_float("mlp_ratio", self.mlp_ratio, 0.0, low_open=True)
        check_choice("norm", self.norm, NORM_PLACEMENTS)
        check_choice("position", self.position, POSITIONS)
        check_choice("rope_mode", self.rope_mode, ROPE_MODES)
        check_float("rope_base", self.rope_base, 1.0, low_open=True)
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(
                f"position='rope' needs an even head dimension, but d_model={self.d_model} / "
                f"n_heads={self.n_heads} = {self.head_dim}"
            )
        check_choice("attention", self.attention, ATTENTIONS)
        if self.position == "rope" and not getattr(
            ATTENTIONS[self.attention], "uses_rotary", False
        ):
            raise ValueError(
                f"position='rope' rotates softmax attention's queries and keys, but "
                f"attention={self.attention!r} does not use them that way: choose position "
                f"'nope' (its recurrence already orders tokens), 'learned' or 'sinusoidal'"
            )
        if not isinstance(self.attention_options, dict):
            raise TypeError(f"attention_options must be a dict, got {self.attention_options!r}")
        if not isinstance(self.tie_weights, bool):
            raise TypeError(f"tie_weights must be true or false, got {self.tie_weights!r}")
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_float("norm_eps", self.norm_eps, 0.0, low_open=True)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class GeluMLP(nn.Module):
    """GPT-2's position-wise MLP: ``down(gelu(up(x)))``, hidden width ``mlp_ratio * D``."""

    def __init__(self, d_model: int, mlp_ratio: float, n_layers: int):
        super().__init__()
        hidden = round(mlp_ratio * d_model)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)
        init_linear_(self.up_proj)
        init_linear_(self.down_proj, residual_init_std(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.down_proj(F.gelu(self.up_proj(x)))


class SwiGLUMLP(nn.Module):
    """``down(silu(gate(x)) * up(x))`` (Shazeer 2020, arXiv 2002.05202, eq. 6).

    Three matrices instead of two, so the hidden width is ``2/3 * mlp_ratio * D`` to keep the
    parameter count of the GELU MLP (as Llama does).
    """

    def __init__(self, d_model: int, mlp_ratio: float, n_layers: int):
        super().__init__()
        hidden = max(1, round(2 * mlp_ratio * d_model / 3))
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)
        init_linear_(self.gate_proj)
        init_linear_(self.up_proj)
        init_linear_(self.down_proj, residual_init_std(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


MLPS: dict[str, type[nn.Module]] = {"gelu": GeluMLP, "swiglu": SwiGLUMLP}


class TransformerBlock(nn.Module):
    """One attention sublayer and one MLP sublayer, each a residual branch with an RMSNorm."""

    def __init__(self, config: TransformerConfig, layer_index: int, rotary: Rotary | None):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        self.attention_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attention = build_attention(
            config.attention,
            d_model=config.d_model,
            n_heads=config.n_heads,
            layer_index=layer_index,
            n_layers=config.n_blocks,
            rotary=rotary,
            options=dict(config.attention_options),
        )
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLPS[config.mlp](config.d_model, config.mlp_ratio, config.n_blocks)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        """(B, T, D) -> (B, T, D); ``cache`` is this block's attention cache (None: full pass)."""
        if self.pre_norm:
            attended, cache = self.attention(self.attention_norm(x), cache)
            x = x + self.dropout(attended)
            return x + self.dropout(self.mlp(self.mlp_norm(x))), cache
        attended, cache = self.attention(x, cache)
        x = self.attention_norm(x + self.dropout(attended))
        return self.mlp_norm(x + self.dropout(self.mlp(x))), cache

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention maps (B, H, T, T) this block computes on its input ``x`` (B, T, D)."""
        if not hasattr(self.attention, "attention_weights"):
            raise TypeError(f"{type(self.attention).__name__} does not expose attention weights")
        return self.attention.attention_weights(self.attention_norm(x) if self.pre_norm else x)


@dataclass
class TransformerState:
    """Decoding state: one attention cache per block and the next absolute position.

    ``forward_step`` advances it in place (the KV caches grow in preallocated buffers).
    """

    caches: list[Any]
    position: int = 0


class TransformerLanguageModel(LanguageModel):
    """Token embedding, positions, a stack of ``TransformerBlock``s, final norm, unembedding."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.max_context = config.block_size if config.position == "learned" else None
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.token_embedding.weight, mean=0.0, std=INIT_STD)
        self.positions: nn.Module | None = None
        if config.position == "learned":
            self.positions = LearnedPositions(config.block_size, config.d_model)
            nn.init.normal_(self.positions.table.weight, mean=0.0, std=INIT_STD)
        elif config.position == "sinusoidal":
            self.positions = SinusoidalPositions(config.d_model)
        rotary = None
        if config.position == "rope":
            rotary = Rotary(config.head_dim, config.rope_base, config.rope_mode)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config, i, rotary) for i in range(config.n_blocks)
        )
        self.final_norm = (
            RMSNorm(config.d_model, config.norm_eps) if config.norm == "pre" else nn.Identity()
        )
        self.unembedding = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.unembedding.weight = self.token_embedding.weight  # one (V, D) tensor
        else:
            init_linear_(self.unembedding)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self._logits(self.hidden_states(tokens)[-1])

    def hidden_states(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream after each block, n_blocks tensors (B, T, D) (before final norm)."""
        x = self._embed(tokens, offset=0)
        states = []
        for block in self.blocks:
            x, _ = block(x)
            states.append(x)
        return states

    def attention_maps(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Per block, the attention weights (B, H, T, T) of a full pass over ``tokens`` (B, T)."""
        x = self._embed(tokens, offset=0)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_weights(x))
            x, _ = block(x)
        return maps

    def new_state(self, batch_size: int) -> TransformerState:
        check_int("batch_size", batch_size, 1)
        weight = self.token_embedding.weight
        return TransformerState(
            [
                block.attention.new_cache(batch_size, weight.device, weight.dtype)
                for block in self.blocks
            ]
        )

    def forward_step(
        self, tokens: torch.Tensor, state: TransformerState, last_only: bool = False
    ) -> tuple[torch.Tensor, TransformerState]:
        x = self._embed(tokens, offset=state.position)
        for i, block in enumerate(self.blocks):
            x, state.caches[i] = block(x, state.caches[i])
        state.position += tokens.shape[1]
        return self._logits(x[:, -1:] if last_only else x), state

    def training_flops_per_token(self, sequence_length: int) -> float:
        """Training FLOPs per token, ``6 N + 12 L T D`` (Chowdhery et al. 2022, appendix B).

        N counts the parameters used in matrix products: lookup-only tables (learned
        positions, an untied token embedding) are left out. ``12 L T D`` is the attention
        score and value products, forward and backward, at sequence length T.
        """
        lookup_only = 0 if self.config.tie_weights else self.token_embedding.weight.numel()
        if isinstance(self.positions, LearnedPositions):
            lookup_only += self.positions.table.weight.numel()
        matmul_parameters = self.num_parameters() - lookup_only
        return 6 * matmul_parameters + 12 * len(self.blocks) * sequence_length * self.config.d_model

    def _embed(self, tokens: torch.Tensor, offset: int) -> torch.Tensor:
        """Token embeddings plus absolute positions offset .. offset + T - 1: (B, T, D)."""
        check_tokens(tokens, self.vocab_size)
        if self.max_context is not None and offset + tokens.shape[1] > self.max_context:
            raise ValueError(
                f"context of {offset + tokens.shape[1]} tokens exceeds max_context="
                f"{self.max_context} (learned positions stop at block_size)"
            )
        x = self.token_embedding(tokens)  # (B, T, D)
        if self.positions is not None:
            x = x + self.positions(offset, tokens.shape[1])  # (T, D) broadcast over B
        return self.dropout(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, V)
        return self.unembedding(self.final_norm(x))
