"""Attention maps of a Transformer on one prompt, as plain data for a figure."""

from __future__ import annotations

from typing import Any

import torch

from picollm.models.transformer import TransformerLanguageModel


@torch.no_grad()
def attention_maps_record(
    model: TransformerLanguageModel, tokens: list[int], token_texts: list[str]
) -> dict[str, Any]:
    """Every block's attention weights on ``tokens``: ``maps[block][head][query][key]``, each
    query row a distribution over the keys at or before it (causal)."""
    if len(tokens) != len(token_texts):
        raise ValueError(f"{len(tokens)} tokens but {len(token_texts)} token texts")
    model.eval()
    ids = torch.tensor([tokens], dtype=torch.int64)  # (1, T)
    maps = model.attention_maps(ids)  # n_blocks x (1, H, T, T)
    return {
        "tokens": token_texts,
        "maps": [block_map[0].float().tolist() for block_map in maps],  # (L, H, T, T)
    }
