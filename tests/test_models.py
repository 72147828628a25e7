"""Every model in the zoo honours the LanguageModel contract: oracles shared by all types."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from picollm.models import build

VOCAB = 23
BLOCK = 16


@pytest.fixture(autouse=True)
def fixed_seed() -> None:
    """Every test draws its random tensors from the same seed."""
    torch.manual_seed(0)


def transformer(**overrides: Any) -> dict[str, Any]:
    return {"type": "transformer", "vocab_size": VOCAB, "block_size": BLOCK, "d_model": 16,
            "n_heads": 2, "n_blocks": 2, **overrides}  # fmt: skip


def kgram(**overrides: Any) -> dict[str, Any]:
    return {"type": "kgram_mlp", "vocab_size": VOCAB, "block_size": BLOCK, "kgram_k": 3,
            "embed_size": 8, "hidden_size": 12, **overrides}  # fmt: skip


def lstm(**overrides: Any) -> dict[str, Any]:
    return {"type": "lstm", "vocab_size": VOCAB, "block_size": BLOCK, "embed_size": 8,
            **overrides}  # fmt: skip


CONFIGS = [
    *(
        transformer(position=position, norm=norm, mlp=mlp)
        for position, norm, mlp in itertools.product(
            ("learned", "sinusoidal", "rope", "nope"), ("pre", "post"), ("gelu", "swiglu")
        )
    ),
    transformer(position="rope", rope_mode="halves"),
    transformer(attention_options={"path": "explicit"}, tie_weights=False),
    transformer(n_blocks=1, n_heads=1),
    *(
        kgram(window=window, input=input_)
        for window, input_ in itertools.product(("current", "starter"), ("embedding", "onehot"))
    ),
    kgram(kgram_k=1, num_inner_mlp_layers=3),
    lstm(),
    lstm(num_layers=2, hidden_size=10),
]


def config_id(config: dict[str, Any]) -> str:
    return "-".join(str(v) for k, v in config.items() if k not in ("vocab_size", "block_size"))


def make(config: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(config).eval()


def random_tokens(batch: int, time: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


all_models = pytest.mark.parametrize("config", CONFIGS, ids=config_id)


@all_models
@pytest.mark.parametrize("t", [0, 6, BLOCK - 3])
def test_future_tokens_never_change_past_logits(config, t):
    model = make(config)
    tokens = random_tokens(2, BLOCK)
    changed = tokens.clone()
    changed[:, t + 1 :] = (tokens[:, t + 1 :] + 1 + random_tokens(2, BLOCK - t - 1, 7)) % VOCAB
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])  # the change was seen


@all_models
def test_decoding_in_uneven_pieces_matches_full_forward(config):
    model = make(config)
    tokens = random_tokens(3, 13)
    with torch.no_grad():
        full = model(tokens)
        state, last_state = model.new_state(3), model.new_state(3)
        pieces, start = [], 0
        for size in (5, 1, 1, 3, 2, 1):
            end = start + size
            logits, state = model.forward_step(tokens[:, start:end], state)
            last, last_state = model.forward_step(tokens[:, start:end], last_state, last_only=True)
            assert logits.shape == (3, size, VOCAB) and last.shape == (3, 1, VOCAB)
            torch.testing.assert_close(last[:, 0], full[:, end - 1], atol=1e-5, rtol=0)
            pieces.append(logits)
            start = end
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


@all_models
def test_gradients_reach_every_parameter(config):
    model = make(config).train()
    tokens = random_tokens(2, BLOCK)
    logits = model(tokens)
    F.cross_entropy(logits.flatten(0, 1), random_tokens(2, BLOCK, 3).flatten()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@all_models
def test_a_fixed_seed_gives_identical_models(config):
    tokens = random_tokens(2, 9)
    with torch.no_grad():
        first, again, other = make(config)(tokens), make(config)(tokens), make(config, 1)(tokens)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@all_models
def test_shapes_and_context(config):
    model = make(config)
    assert model.vocab_size == VOCAB
    assert model(random_tokens(4, 7)).shape == (4, 7, VOCAB)
    learned = config["type"] == "transformer" and config.get("position", "learned") == "learned"
    assert model.max_context == (BLOCK if learned else None)
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize("config", [transformer(), kgram(), lstm()], ids=config_id)
@pytest.mark.parametrize(
    "tokens", [torch.tensor([[0, VOCAB]]), torch.tensor([[-1, 2]]), torch.tensor([1, 2])]
)
def test_bad_tokens_are_rejected(config, tokens):
    with pytest.raises(ValueError, match="tokens"):
        make(config)(tokens)


def test_float_tokens_are_rejected():
    with pytest.raises(TypeError, match="tokens"):
        make(kgram())(torch.zeros(1, 3))


# --- build -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"type": "gpt5", "vocab_size": VOCAB}, "gpt5"),
        ({"vocab_size": VOCAB}, "None"),
        (transformer(d_modle=32), "d_modle"),
        (kgram(embed_dim=4), "embed_dim"),
        (lstm(k=3), "'k'"),
        ({"type": "transformer", "block_size": BLOCK}, "vocab_size"),
        ({"type": "transformer", "vocab_size": VOCAB}, "block_size"),
        (transformer(n_heads=3), "n_heads"),
        (transformer(d_model=20, n_heads=4, position="rope"), "rope"),
        (transformer(position="rope", attention="gla"), "position='rope'.*'gla'"),
        (transformer(n_blocks=25), "n_blocks"),
        (transformer(n_blocks=0), "n_blocks"),
        (transformer(n_blocks=True), "n_blocks"),
        (transformer(d_model=16.0), "d_model"),
        (transformer(mlp="relu"), "mlp"),
        (transformer(mlp_ratio=0), "mlp_ratio"),
        (transformer(norm="sandwich"), "norm"),
        (transformer(position="alibi"), "position"),
        (transformer(rope_mode="interleaved"), "rope_mode"),
        (transformer(rope_base=1.0), "rope_base"),
        (transformer(attention="flash"), "attention"),
        (transformer(attention_options={"window": 4}), "window"),
        (transformer(attention_options={"path": "fast"}), "path"),
        (transformer(attention_options=[1]), "attention_options"),
        (transformer(tie_weights="yes"), "tie_weights"),
        (transformer(dropout=1.0), "dropout"),
        (transformer(norm_eps=0.0), "norm_eps"),
        (kgram(kgram_k=0), "kgram_k"),
        (kgram(input="bag"), "input"),
        (kgram(window="future"), "window"),
        (kgram(num_inner_mlp_layers=0), "num_inner_mlp_layers"),
        (kgram(hidden_size=0), "hidden_size"),
        (kgram(dropout=-0.1), "dropout"),
        (kgram(kgram_chunk_size=1), "kgram_chunk_size"),
        (lstm(num_layers=0), "num_layers"),
        (lstm(vocab_size=0), "vocab_size"),
    ],
)
def test_build_rejects_bad_configs_naming_the_key(config, named):
    with pytest.raises(ValueError, match=named):
        build(config)


@pytest.mark.parametrize("config", [kgram(), lstm()], ids=config_id)
def test_build_drops_an_injected_block_size_the_model_does_not_use(config):
    assert "block_size" in config
    assert build(config).vocab_size == VOCAB


def test_build_ignores_run_keys():
    model = build({**lstm(), "name": "baseline", "training": {"steps": 10}})
    assert model.vocab_size == VOCAB
