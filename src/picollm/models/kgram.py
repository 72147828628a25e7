"""The course's k-gram MLP language model, vectorised over batch and time.

The logits at position t come from an MLP over a window of k tokens. With ``window="current"``
the window is tokens t-k+1 .. t (the k tokens ending at t, which predict t+1). With
``window="starter"`` it is t-k .. t-1, reproducing the course starter's off-by-one in which
the current token is never seen. Windows reaching before the sequence start are filled with a
dedicated padding symbol, index ``vocab_size`` (not token 0, which is "!" in GPT-2), so a
window holds one of ``vocab_size + 1`` symbols per slot.

The MLP is ``num_inner_mlp_layers`` blocks of (Linear -> SiLU -> dropout), the first one
reading the window, then a Linear to the vocabulary. The first layer reads either

- ``input="embedding"``: the concatenated embeddings of the k symbols (k * embed_size wide), or
- ``input="onehot"``: the concatenated one-hot vectors of the k symbols (k * (V+1) wide), as in
  the starter. That layer is never materialised: see ``OneHotWindow``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.base import LanguageModel, check_choice, check_float, check_int, check_tokens

INPUTS = ("embedding", "onehot")
WINDOWS = ("current", "starter")


@dataclass(frozen=True)
class KGramConfig:
    """Hyperparameters, named as the starter's flags. The starter's ``kgram_chunk_size`` is not
    accepted: it only grouped the per-position loop, which a vectorised model does not have."""

    vocab_size: int
    kgram_k: int = 3  # window length k
    embed_size: int = 64  # symbol embedding width (input="embedding")
    num_inner_mlp_layers: int = 1  # (Linear -> SiLU) blocks before the output Linear
    hidden_size: int | None = None  # MLP width; None: embed_size (the starter used one width)
    input: str = "embedding"  # embedding | onehot
    window: str = "current"  # current: t-k+1..t | starter: t-k..t-1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 1)
        check_int("kgram_k", self.kgram_k, 1)
        check_int("embed_size", self.embed_size, 1)
        check_int("num_inner_mlp_layers", self.num_inner_mlp_layers, 1)
        if self.hidden_size is not None:
            check_int("hidden_size", self.hidden_size, 1)
        check_choice("input", self.input, INPUTS)
        check_choice("window", self.window, WINDOWS)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)

    @property
    def width(self) -> int:
        return self.hidden_size if self.hidden_size is not None else self.embed_size


class EmbeddingWindow(nn.Module):
    """First MLP layer over embedded symbols: ``W [e(w_1); ...; e(w_k)] + b``."""

    def __init__(self, n_symbols: int, k: int, embed_size: int, width: int):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, embed_size)
        self.linear = nn.Linear(k * embed_size, width)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (..., k) -> (..., width)
        return self.linear(self.embedding(windows).flatten(-2))  # (..., k * E) -> (..., width)


class OneHotWindow(nn.Module):
    """First MLP layer over one-hot symbols, ``W [onehot(w_1); ...; onehot(w_k)] + b``.

    With n symbols, ``W`` is (width, k * n) and the one-hot concatenation has a 1 exactly at
    columns ``s * n + w_s`` for slots s = 0 .. k-1, so the product is a sum of k columns:

        W x = sum_s W[:, s * n + w_s].

    That is an embedding table of k * n rows (row ``s * n + w`` = column of W) summed over the
    k looked-up rows: ``F.embedding_bag(mode="sum")``, never forming the k * n wide input.
    ``weight`` holds ``W`` transposed and is initialised like the equivalent ``nn.Linear``.
    """

    def __init__(self, n_symbols: int, k: int, width: int):
        super().__init__()
        self.n_symbols = n_symbols
        fan_in = k * n_symbols
        bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation for this fan-in
        self.weight = nn.Parameter(torch.empty(fan_in, width).uniform_(-bound, bound))  # W^T
        self.bias = nn.Parameter(torch.empty(width).uniform_(-bound, bound))
        self.register_buffer("slot_offsets", torch.arange(k) * n_symbols, persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (..., k) -> (..., width)
        rows = (windows + self.slot_offsets).reshape(-1, windows.shape[-1])  # (N, k) into W^T
        summed = F.embedding_bag(rows, self.weight, mode="sum")  # (N, width)
        return (summed + self.bias).reshape(*windows.shape[:-1], -1)


class KGramMLPLanguageModel(LanguageModel):
    """Next-token logits from an MLP over the last k symbols (see the module docstring)."""

    def __init__(self, config: KGramConfig):
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.max_context = None  # only the last k tokens ever matter
        self.padding_index = config.vocab_size
        n_symbols, k, width = config.vocab_size + 1, config.kgram_k, config.width
        if config.input == "embedding":
            self.window_layer = EmbeddingWindow(n_symbols, k, config.embed_size, width)
        else:
            self.window_layer = OneHotWindow(n_symbols, k, width)
        inner = []
        for _ in range(config.num_inner_mlp_layers - 1):
            inner += [nn.Linear(width, width), nn.SiLU(), nn.Dropout(config.dropout)]
        self.hidden_layers = nn.Sequential(nn.SiLU(), nn.Dropout(config.dropout), *inner)
        self.unembedding = nn.Linear(width, config.vocab_size)

    def window_logits(self, windows: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) for windows (..., k) of symbols in [0, V] (V = padding)."""
        return self.unembedding(self.hidden_layers(self.window_layer(windows)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        logits, _ = self.forward_step(tokens, self.new_state(tokens.shape[0]))
        return logits

    def new_state(self, batch_size: int) -> torch.Tensor:
        """The last k symbols seen, (B, k): all padding before the first token."""
        check_int("batch_size", batch_size, 1)
        device = self.unembedding.weight.device
        shape = (batch_size, self.config.kgram_k)
        return torch.full(shape, self.padding_index, dtype=torch.long, device=device)

    def forward_step(
        self, tokens: torch.Tensor, state: torch.Tensor, last_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_tokens(tokens, self.vocab_size)
        k = self.config.kgram_k
        context = torch.cat((state, tokens.long()), dim=1)  # (B, k + T)
        windows = context.unfold(1, k, 1)  # (B, T + 1, k); window i = context[i : i + k]
        # Window i ends at context position i + k - 1, so windows 1 .. T end at the new tokens
        # ("current") and windows 0 .. T - 1 end just before them ("starter").
        first = 1 if self.config.window == "current" else 0
        windows = windows[:, first : first + tokens.shape[1]]  # (B, T, k)
        if last_only:
            windows = windows[:, -1:]
        return self.window_logits(windows), context[:, -k:]
