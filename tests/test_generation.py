"""Cached decoding against the recompute oracles, for every model kind; batching, seeds, stops."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from picollm.generation import DECODERS, generate
from picollm.models import build
from picollm.models.attention import ATTENTIONS

VOCAB = 29
BLOCK = 10  # the learned-position Transformer's window: long prompts and sliding are exercised

PROMPTS = [
    [1, 2, 3],
    [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
    [7, 8, 9],
    [3, 1, 4, 1, 5],
]


def transformer(**overrides: Any) -> dict[str, Any]:
    return {"type": "transformer", "vocab_size": VOCAB, "block_size": BLOCK, "d_model": 16,
            "n_heads": 2, "n_blocks": 2, **overrides}  # fmt: skip


LEARNED = transformer(position="learned")
ROPE = transformer(position="rope")
KGRAM = {"type": "kgram_mlp", "vocab_size": VOCAB, "kgram_k": 3, "embed_size": 8}
LSTM = {"type": "lstm", "vocab_size": VOCAB, "embed_size": 8}

CONFIGS = [
    LEARNED,
    ROPE,
    *(transformer(position=position) for position in ("sinusoidal", "nope")),
    transformer(norm="post", mlp="swiglu", position="rope", rope_mode="halves"),
    *(
        transformer(attention=kind, position="nope")
        for kind in sorted(ATTENTIONS)
        if kind != "softmax"
    ),
    KGRAM,
    {
        "type": "kgram_mlp",
        "vocab_size": VOCAB,
        "kgram_k": 2,
        "input": "onehot",
        "window": "starter",
    },
    LSTM,
    {"type": "lstm", "vocab_size": VOCAB, "embed_size": 8, "hidden_size": 12, "num_layers": 2},
]


def config_id(config: dict[str, Any]) -> str:
    return "-".join(str(v) for k, v in config.items() if k not in ("vocab_size", "block_size"))


all_models = pytest.mark.parametrize("config", CONFIGS, ids=config_id)


def make(config: dict[str, Any], seed: int = 0):
    torch.manual_seed(seed)
    return build(config)


@all_models
def test_cached_decoding_equals_both_recompute_oracles_greedy(config):
    model = make(config)
    runs = {d: generate(model, PROMPTS, 16, greedy=True, decoding=d) for d in DECODERS}
    cached = runs["cached"]
    for decoding, run in runs.items():
        assert run.tokens == cached.tokens, decoding
        for got, want in zip(run.logprobs, cached.logprobs, strict=True):
            assert got == pytest.approx(want, abs=1e-5), decoding
    assert all(len(tokens) == 16 for tokens in cached.tokens)


@all_models
def test_cached_decoding_equals_recompute_when_sampling(config):
    model = make(config)
    options = {"temperature": 1.5, "top_k": 20, "top_p": 0.9, "seed": 3}
    cached = generate(model, PROMPTS, 12, **options)
    assert cached.tokens == generate(model, PROMPTS, 12, decoding="recompute_all", **options).tokens


@pytest.mark.parametrize("config", [ROPE, LSTM], ids=config_id)
def test_logprobs_are_the_untruncated_temperature_one_softmax(config):
    """Oracle: one forward pass over prompt + continuation (models without a fixed window)."""
    model = make(config).eval()
    prompt = PROMPTS[1]
    out = generate(model, [prompt], 8, temperature=0.7, top_p=0.5, seed=1)
    sequence = torch.tensor([prompt + out.tokens[0]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(sequence)[0].double(), dim=-1)  # (T, V)
    positions = range(len(prompt) - 1, sequence.shape[1] - 1)
    want = [logprobs[t, sequence[0, t + 1]].item() for t in positions]
    assert out.logprobs[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("config", [LEARNED, ROPE, KGRAM, LSTM], ids=config_id)
def test_batched_generation_equals_each_prompt_alone(config):
    model = make(config)
    seeds = [11, 12, 13, 14]
    options = {"temperature": 1.2, "top_p": 0.95}
    batched = generate(model, PROMPTS, 10, seed=seeds, **options)
    for prompt, seed, tokens, logprobs in zip(
        PROMPTS, seeds, batched.tokens, batched.logprobs, strict=True
    ):
        alone = generate(model, [prompt], 10, seed=[seed], **options)
        assert alone.tokens == [tokens]
        assert alone.logprobs[0] == pytest.approx(logprobs, abs=1e-6)
    same_length = [[1, 2, 3], [7, 8, 9], [2, 2, 2]]  # decoded as one batch of three
    together = generate(model, same_length, 10, seed=[1, 2, 3], **options).tokens
    assert together == [generate(model, [p], 10, seed=[s], **options).tokens[0]
                        for p, s in zip(same_length, [1, 2, 3], strict=True)]  # fmt: skip


def test_seeds_reproduce_and_a_prompt_ignores_its_companions():
    model = make(ROPE)
    first = generate(model, PROMPTS, 12, temperature=2.0, seed=5).tokens
    assert generate(model, PROMPTS, 12, temperature=2.0, seed=5).tokens == first
    assert generate(model, PROMPTS, 12, temperature=2.0, seed=6).tokens != first
    assert generate(model, PROMPTS[:2], 12, temperature=2.0, seed=5).tokens == first[:2]


def test_stop_token_ends_each_sequence_after_emitting_it():
    model = make(LSTM)
    prompts = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  # one batch: rows stop at different steps
    free = generate(model, prompts, 30, temperature=2.0, seed=9).tokens
    stop = free[0][5]
    stopped = generate(model, prompts, 30, temperature=2.0, seed=9, stop_token=stop)
    for row, full in zip(stopped.tokens, free, strict=True):
        want = full[: full.index(stop) + 1] if stop in full else full
        assert row == want
    assert len(stopped.tokens[0]) <= 6
    assert [len(lp) for lp in stopped.logprobs] == [len(t) for t in stopped.tokens]


def test_long_prompts_keep_their_most_recent_tokens_for_fixed_context_models():
    model = make(LEARNED)  # learned positions: max_context = BLOCK
    assert model.max_context == BLOCK
    long_prompt = list(range(1, 26))
    for options in ({"greedy": True}, {"top_p": 0.8, "seed": [4]}):
        full = generate(model, [long_prompt], 15, **options)
        assert full.tokens == generate(model, [long_prompt[-BLOCK:]], 15, **options).tokens


def test_train_or_eval_mode_is_restored_and_dropout_is_off():
    model = make(transformer(dropout=0.5, position="rope"))
    model.train()
    first = generate(model, PROMPTS, 8, greedy=True).tokens
    assert model.training
    assert generate(model, PROMPTS, 8, greedy=True).tokens == first
    model.eval()
    assert generate(model, PROMPTS, 8, greedy=True).tokens == first
    assert not model.training


def test_zero_new_tokens_and_no_prompts():
    model = make(LSTM)
    assert generate(model, PROMPTS[:2], 0).tokens == [[], []]
    assert generate(model, [], 5).tokens == []


@pytest.mark.parametrize(
    ("prompts", "options", "error", "name"),
    [
        ([[]], {}, ValueError, r"prompts\[0\]"),
        ([[1], [VOCAB]], {}, ValueError, r"prompts\[1\]"),
        ([[1, -1]], {}, ValueError, r"prompts\[0\]"),
        ([[1, 2.0]], {}, TypeError, r"prompts\[0\]"),
        ([[1]], {"max_new_tokens": -1}, ValueError, "max_new_tokens"),
        ([[1]], {"decoding": "fast"}, ValueError, "decoding"),
        ([[1]], {"stop_token": VOCAB}, ValueError, "stop_token"),
        ([[1], [2]], {"seed": [1]}, ValueError, "seed"),
        ([[1]], {"seed": -3}, ValueError, "seed"),
        ([[1]], {"seed": None}, TypeError, "seed"),
        ([[1]], {"top_p": 0.0}, ValueError, "top_p"),
        ([[1]], {"temperature": -1.0}, ValueError, "temperature"),
    ],
)
def test_bad_arguments_are_rejected_by_name(prompts, options, error, name):
    model = make(LSTM)
    options = {"max_new_tokens": 3, **options}
    with pytest.raises(error, match=name):
        generate(model, prompts, **options)


def test_a_plain_module_is_not_a_language_model():
    with pytest.raises(TypeError, match="model"):
        generate(torch.nn.Linear(2, 2), [[1]], 3)
