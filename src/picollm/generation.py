"""Autoregressive generation from any `LanguageModel`, decoding with the model's own state.

``generate`` continues each prompt token by token. The default decoding (``"cached"``) prefills
the prompt once and then feeds one token per step through ``forward_step(..., last_only=True)``,
reusing the model's decoding state: a KV cache (Transformer), a recurrent state (LSTM), a token
window (k-gram). Two slower decodings recompute the whole context every step and serve as
references (benchmark) and as the oracle the cached path is tested against:

- ``"recompute_all"``: the course starter's method, ``model(context)`` for every position's logits;
- ``"recompute_last"``: the context recomputed from an empty state, logits of the last position only.

Context: a model with a fixed context (``max_context`` not None, e.g. learned positions) sees at
most its ``max_context`` most recent tokens. A longer prompt keeps its most recent tokens. Once the
sequence fills the window, each new token *slides* it: the cached decoding re-prefills the
``max_context`` most recent tokens (the newest included), so from then on every token costs a
prefill of ``max_context`` tokens, as much as ``"recompute_last"``; the cache speeds up only the
tokens before the window is full. Models with ``max_context=None`` never slide.

Batching: prompts of equal length (after that truncation) are decoded together as one batch;
states are opaque, so prompts of different lengths form separate batches rather than being
padded. Each prompt draws its randomness from its own generator, seeded from ``seed`` and its
index, so a prompt's continuation does not depend on which other prompts share its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from picollm.models.base import LanguageModel, check_int
from picollm.sampling import SamplingConfig

_MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts seeds up to this


@dataclass(frozen=True)
class Generation:
    """The continuation of each prompt, in prompt order.

    tokens: the new tokens; a produced stop token is included as the last one.
    logprobs: for each new token, its log-probability under the model's full softmax at
    temperature 1 (no truncation), whatever the sampling settings: ``log p_model(token | context)``.
    """

    tokens: list[list[int]]
    logprobs: list[list[float]]


def generate(
    model: LanguageModel,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | Sequence[int] = 0,
    stop_token: int | None = None,
    decoding: str = "cached",
) -> Generation:
    """Continue each prompt (a non-empty list of token ids) by up to ``max_new_tokens`` tokens.

    Sampling settings are those of `picollm.sampling.SamplingConfig`. ``seed``: an int (each
    prompt i gets its own stream, derived from (seed, i) with numpy's ``SeedSequence``) or one
    int per prompt. A sequence stops after producing ``stop_token`` (e.g. ``<|endoftext|>``,
    50256). ``decoding``: ``"cached"``, ``"recompute_last"`` or ``"recompute_all"`` (module
    docstring). Runs under ``model.eval()`` and ``torch.inference_mode()``, then restores the
    model's train/eval mode.
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a picollm LanguageModel, got {type(model).__name__}")
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    check_int("max_new_tokens", max_new_tokens, 0)
    if decoding not in DECODERS:
        raise ValueError(f"decoding must be one of {sorted(DECODERS)}, got {decoding!r}")
    if stop_token is not None:
        check_int("stop_token", stop_token, 0, model.vocab_size - 1)
    contexts = [_context(model, i, prompt) for i, prompt in enumerate(prompts)]
    seeds = _prompt_seeds(seed, len(contexts))

    tokens: list[list[int]] = [[] for _ in contexts]
    logprobs: list[list[float]] = [[] for _ in contexts]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for group in _group_by_length(contexts):
                decoder = DECODERS[decoding](model, [contexts[i] for i in group], max_new_tokens)
                generators = [_generator(seeds[i], decoder.device) for i in group]
                new, scores = _decode(decoder, max_new_tokens, sampling, generators, stop_token)
                for row, i in enumerate(group):
                    tokens[i], logprobs[i] = new[row], scores[row]
    finally:
        model.train(was_training)
    return Generation(tokens, logprobs)


class _Decoder:
    """Holds a batch's tokens so far and produces the logits for the next position."""

    def __init__(self, model: LanguageModel, contexts: list[list[int]], max_new_tokens: int):
        self.model = model
        parameter = next(model.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        prompt = torch.tensor(contexts, dtype=torch.long, device=self.device)  # (B, T)
        self.tokens = torch.empty(
            (prompt.shape[0], prompt.shape[1] + max_new_tokens),
            dtype=torch.long,
            device=self.device,
        )  # (B, T + max_new_tokens), filled up to self.length
        self.tokens[:, : prompt.shape[1]] = prompt
        self.length = prompt.shape[1]

    def append(self, new_tokens: torch.Tensor) -> None:  # (B,)
        self.tokens[:, self.length] = new_tokens
        self.length += 1

    def window(self) -> torch.Tensor:
        """The tokens the model conditions on: the most recent ``max_context`` (B, T')."""
        window = self.model.max_context
        start = 0 if window is None else max(0, self.length - window)
        return self.tokens[:, start : self.length]

    def next_logits(self) -> torch.Tensor:  # (B, V)
        raise NotImplementedError


class _RecomputeAll(_Decoder):
    """The starter's decoding: a full forward pass and all positions' logits every step."""

    def next_logits(self) -> torch.Tensor:
        return self.model(self.window())[:, -1]  # (B, T', V) -> (B, V)


class _RecomputeLast(_Decoder):
    """The context prefilled into an empty state every step, logits of the last position only."""

    def __init__(self, model: LanguageModel, contexts: list[list[int]], max_new_tokens: int):
        super().__init__(model, contexts, max_new_tokens)
        self.state = None
        self.held = 0  # tokens in self.state
        self.consumed = 0  # self.tokens[:, :consumed] have been fed

    def next_logits(self) -> torch.Tensor:
        window = self.window()
        logits, self.state = self.model.forward_step(
            window, self.model.new_state(window.shape[0]), last_only=True
        )
        self.held = window.shape[1]
        self.consumed = self.length
        return logits[:, -1]  # (B, V)


class _Cached(_RecomputeLast):
    """Prefill once, then one cached step per token; a full fixed-size window re-prefills."""

    def next_logits(self) -> torch.Tensor:
        window = self.model.max_context
        if self.held == 0 or (window is not None and self.held >= window):
            return super().next_logits()
        new = self.tokens[:, self.consumed : self.length]  # (B, 1)
        logits, self.state = self.model.forward_step(new, self.state, last_only=True)
        self.held += new.shape[1]
        self.consumed = self.length
        return logits[:, -1]  # (B, V)


DECODERS: dict[str, type[_Decoder]] = {
    "cached": _Cached,
    "recompute_last": _RecomputeLast,
    "recompute_all": _RecomputeAll,
}


def _decode(
    decoder: _Decoder,
    max_new_tokens: int,
    sampling: SamplingConfig,
    generators: list[torch.Generator],
    stop_token: int | None,
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample up to ``max_new_tokens`` for each row; rows that stopped keep computing, unrecorded."""
    batch = len(generators)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    running = [True] * batch
    for _ in range(max_new_tokens):
        logits = decoder.next_logits()  # (B, V)
        chosen = _sample_rows(logits, sampling, generators)  # (B,)
        scores = torch.log_softmax(logits, dim=-1, dtype=torch.float32).gather(
            -1, chosen.unsqueeze(-1)
        )  # (B, 1)
        for row, (token, score) in enumerate(
            zip(chosen.tolist(), scores.squeeze(-1).tolist(), strict=True)
        ):
            if running[row]:
                tokens[row].append(token)
                logprobs[row].append(score)
                running[row] = token != stop_token
        if not any(running):
            break
        decoder.append(chosen)
    return tokens, logprobs


def _sample_rows(
    logits: torch.Tensor, sampling: SamplingConfig, generators: list[torch.Generator]
) -> torch.Tensor:
    """One token per row of logits (B, V), each row drawing from its own generator."""
    if sampling.is_greedy:
        return logits.argmax(dim=-1)
    return torch.stack([sampling.sample(row, g) for row, g in zip(logits, generators, strict=True)])


def _context(model: LanguageModel, index: int, prompt: Sequence[int]) -> list[int]:
    """A validated prompt cut to the model's ``max_context`` most recent tokens."""
    ids = list(prompt)
    if not ids:
        raise ValueError(f"prompts[{index}] is empty; start it with a token (e.g. 50256)")
    for token in ids:
        if isinstance(token, bool) or not isinstance(token, int | np.integer):
            raise TypeError(f"prompts[{index}] must hold int token ids, got {token!r}")
        if not 0 <= token < model.vocab_size:
            raise ValueError(
                f"prompts[{index}] holds token {token}, outside [0, {model.vocab_size})"
            )
    window = model.max_context
    return ids if window is None else ids[-window:]  # so that long prompts batch together


def _group_by_length(contexts: list[list[int]]) -> list[list[int]]:
    """Indices of the contexts, grouped by length (groups in order of first appearance)."""
    groups: dict[int, list[int]] = {}
    for i, context in enumerate(contexts):
        groups.setdefault(len(context), []).append(i)
    return list(groups.values())


def _prompt_seeds(seed: int | Sequence[int], count: int) -> list[int]:
    """One seed per prompt: given, or derived from (seed, prompt index) by ``SeedSequence``."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        check_int("seed", seed, 0, _MAX_SEED)
        return [
            int(np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, np.uint64)[0])
            for i in range(count)
        ]
    if not isinstance(seed, Sequence):
        raise TypeError(f"seed must be an int or one int per prompt, got {seed!r}")
    seeds = list(seed)
    if len(seeds) != count:
        raise ValueError(f"seed must be an int or one int per prompt ({count}), got {len(seeds)}")
    for i, value in enumerate(seeds):
        check_int(f"seed[{i}]", value, 0, _MAX_SEED)
    return seeds


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)
