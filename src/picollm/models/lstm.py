"""The course starter's LSTM language model: embedding -> LSTM -> linear over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from picollm.models.base import LanguageModel, check_float, check_int, check_tokens

LSTMState = tuple[torch.Tensor, torch.Tensor] | None
"""(h_n, c_n), each (num_layers, B, hidden); None before the first token (zeros)."""


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int
    embed_size: int = 64
    hidden_size: int | None = None  # None: same as embed_size (the starter's choice)
    num_layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        check_int("embed_size", self.embed_size, 1)
        if self.hidden_size is not None:
            check_int("hidden_size", self.hidden_size, 1)
        check_int("num_layers", self.num_layers, 1)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)


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

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        logits, _ = self.forward_step(tokens, None)
        return logits

    def new_state(self, batch_size: int) -> LSTMState:
        return None  # nn.LSTM starts from zeros when given no state

    def forward_step(
        self, tokens: torch.Tensor, state: LSTMState, last_only: bool = False
    ) -> tuple[torch.Tensor, LSTMState]:
        check_tokens(tokens, self.vocab_size)
        x = self.embedding(tokens)  # (B, T, E)
        h, state = self.lstm(x, state)  # (B, T, H); state = (h_n, c_n), each (layers, B, H)
        if last_only:
            h = h[:, -1:]  # (B, 1, H)
        return self.unembedding(self.dropout(h)), state  # (B, T, V)
