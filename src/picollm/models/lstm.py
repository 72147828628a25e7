"""The course starter's LSTM language model: embedding -> LSTM -> linear over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from picollm.models.base import LanguageModel


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int
    embed_size: int = 64
    hidden_size: int | None = None  # None: same as embed_size (the starter's choice)
    num_layers: int = 1
    dropout: float = 0.0


class LSTMLanguageModel(LanguageModel):
    """Token embedding, a (multi-layer) LSTM, and an unembedding to vocabulary logits."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.max_context = None
        hidden = config.hidden_size or config.embed_size
        self.embedding = nn.Embedding(config.vocab_size, config.embed_size)
        self.lstm = nn.LSTM(
            config.embed_size,
            hidden,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.unembedding = nn.Linear(hidden, config.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.forward_step(tokens, None)
        return logits

    def new_state(self, batch_size: int) -> None:
        return None  # nn.LSTM starts from zeros when given no state

    def forward_step(self, tokens, state):
        x = self.embedding(tokens)  # (B, T, E)
        h, state = self.lstm(x, state)  # (B, T, H); state = (h_n, c_n), each (layers, B, H)
        return self.unembedding(self.dropout(h)), state  # (B, T, V)
