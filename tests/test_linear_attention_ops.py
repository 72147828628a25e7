"""The linear-attention ops: chunkwise and step forms against token-by-token oracles.

Oracles: each ``naive_*`` recurrence (float64), itself checked against the quadratic
"parallel" form of its paper or against the delta rule's defining property. Tolerances follow
FLA's tests: relative error (L2 norm of the difference over the L2 norm of the reference)
<= 5e-3 in float32, or an absolute error below 1e-6 for (near-)zero references.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from picollm.models.linear_attention import (
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_linear_attention,
    naive_gated_delta_rule,
    naive_gla,
    naive_linear_attention,
    step_gated_delta_rule,
    step_gla,
    step_linear_attention,
)
from picollm.models.linear_attention.ops_gla import MAX_FACTOR_EXPONENT

BATCH, HEADS, KEY_DIM, VALUE_DIM, CHUNK = 2, 2, 8, 6, 16
LENGTHS = (1, 7, 63, 75)
NORMALIZERS = (0.01, 1.0, 10.0)  # log-gates logsigmoid(randn) / normalizer: ~-70 .. ~-0.07
OPS = {
    "linear": (naive_linear_attention, chunk_linear_attention, step_linear_attention),
    "gla": (naive_gla, chunk_gla, step_gla),
    "gated_deltanet": (naive_gated_delta_rule, chunk_gated_delta_rule, step_gated_delta_rule),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, ratio: float = 5e-3):
    """FLA's relative error ||a - b|| / ||b|| <= ratio, and no single element off by more than
    ratio * max|b| (errors confined to a few rows hide in the norm); 1e-6 absolute always passes.
    """
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    difference = actual.double() - expected.double()
    if difference.abs().max() <= 1e-6:
        return
    relative = (difference.norm() / expected.double().norm()).item()
    assert relative <= ratio, f"{what}: relative error {relative:.2e} > {ratio}"
    worst = (difference.abs().max() / expected.double().abs().max()).item()
    assert worst <= ratio, f"{what}: largest error {worst:.2e} of the largest value > {ratio}"


def make_inputs(op: str, time: int, normalizer: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 inputs for ``op`` in the ops' argument order, incl. an initial state."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    shape = (BATCH, HEADS, time)
    q, k, v = randn(*shape, KEY_DIM), randn(*shape, KEY_DIM), randn(*shape, VALUE_DIM)
    if op == "linear":  # positive features, as the layer's elu + 1 makes them
        q, k = F.elu(q) + 1, F.elu(k) + 1
        state = torch.rand(BATCH, HEADS, KEY_DIM, VALUE_DIM + 1, generator=gen)
        return {"q": q, "k": k, "v": v, "initial_state": state}
    state = randn(BATCH, HEADS, KEY_DIM, VALUE_DIM)
    if op == "gla":
        g = F.logsigmoid(randn(*shape, KEY_DIM)) / normalizer
        return {"q": q, "k": k, "v": v, "g": g, "initial_state": state}
    k = F.normalize(k, dim=-1)
    g = F.logsigmoid(randn(*shape)) / normalizer
    beta = torch.sigmoid(randn(*shape))
    return {"q": q, "k": k, "v": v, "g": g, "beta": beta, "initial_state": state}


def run_with_grads(fn, inputs: dict[str, torch.Tensor], dtype: torch.dtype, **kwargs):
    """Output, final state and gradients of every input under fixed random cotangents."""
    leaves = {name: x.detach().to(dtype, copy=True).requires_grad_() for name, x in inputs.items()}
    o, state = fn(**leaves, output_final_state=True, **kwargs)
    gen = torch.Generator().manual_seed(1)
    loss = (o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64)).sum()
    loss = (
        loss + (state.double() * torch.randn(state.shape, generator=gen, dtype=torch.float64)).sum()
    )
    loss.backward()
    return o.detach(), state.detach(), {name: x.grad for name, x in leaves.items()}


def gate_cases(op: str) -> list[float]:
    return [1.0] if op == "linear" else list(NORMALIZERS)


CASES = [(op, t, n) for op in OPS for t in LENGTHS for n in gate_cases(op)]


@pytest.mark.parametrize(("op", "time", "normalizer"), CASES)
@pytest.mark.parametrize("form", ["chunk", "step"])
def test_fast_forms_match_the_naive_recurrence(op, time, normalizer, form):
    naive, chunk, step = OPS[op]
    inputs = make_inputs(op, time, normalizer)
    o_ref, state_ref, grads_ref = run_with_grads(naive, inputs, torch.float64)
    if form == "chunk":
        o, state, grads = run_with_grads(chunk, inputs, torch.float32, chunk_size=CHUNK)
    else:
        o, state, grads = run_with_grads(step, inputs, torch.float32)
    assert o.dtype == torch.float32 and state.dtype == torch.float32
    assert_close(o, o_ref, "o")
    assert_close(state, state_ref, "final state")
    for name in inputs:
        assert_close(grads[name], grads_ref[name], f"d{name}")


@pytest.mark.parametrize("op", ["gla", "gated_deltanet"])
def test_chunk_form_is_exact_under_extreme_decay(op):
    """g = -30 on every step (alpha ~ 1e-13), mixed with no decay at all: nothing overflows."""
    naive, chunk, _ = OPS[op]
    inputs = make_inputs(op, 75, 1.0)
    g = inputs["g"]
    inputs["g"] = torch.where(torch.rand(g.shape) < 0.5, torch.full_like(g, -30.0), 0.0)
    o_ref, state_ref, grads_ref = run_with_grads(naive, inputs, torch.float64)
    o, state, grads = run_with_grads(chunk, inputs, torch.float32, chunk_size=CHUNK)
    assert_close(o, o_ref, "o")
    assert_close(state, state_ref, "final state")
    for name in inputs:
        assert_close(grads[name], grads_ref[name], f"d{name}")


def test_gla_chunk_form_on_both_sides_of_the_factored_scores_bound():
    """Chunks whose decay span is just under / just over the bound of the factored scores.

    Chunk 0 decays mildly; in every channel chunk 1 spans 59 nats (factored, factors near
    e^+-30) and chunk 2 spans 61 nats (sub-chunk scheme).
    """
    assert 2 * MAX_FACTOR_EXPONENT == 60.0
    inputs = make_inputs("gla", 3 * CHUNK, 1.0)
    g = inputs["g"] / 10
    g[:, :, CHUNK + 1 : 2 * CHUNK] = -59.0 / (CHUNK - 1)
    g[:, :, 2 * CHUNK + 1 :] = -61.0 / (CHUNK - 1)
    inputs["g"] = g
    o_ref, state_ref, grads_ref = run_with_grads(naive_gla, inputs, torch.float64)
    o, state, grads = run_with_grads(chunk_gla, inputs, torch.float32, chunk_size=CHUNK)
    torch.testing.assert_close(o.double(), o_ref, rtol=1e-4, atol=1e-4)  # every row, tightly
    assert_close(state, state_ref, "final state")
    for name in inputs:
        assert_close(grads[name], grads_ref[name], f"d{name}")


@pytest.mark.parametrize("op", list(OPS))
def test_no_nan_or_inf_for_extreme_gates_on_long_sequences(op):
    inputs = make_inputs(op, 1000, 0.001)  # log-gates down to about -7000 per step
    if op != "linear":
        inputs["g"][..., :100] = -1e4
        inputs["g"][..., 500:] = 0.0  # long stretches without any decay
    leaves = {name: x.requires_grad_() for name, x in inputs.items()}
    o, state = OPS[op][1](**leaves, output_final_state=True, chunk_size=64)
    (o.sum() + state.sum()).backward()
    assert torch.isfinite(o).all() and torch.isfinite(state).all()
    for name, x in leaves.items():
        assert torch.isfinite(x.grad).all(), f"d{name} is not finite"


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("form", ["chunk", "step"])
def test_carried_state_continues_a_sequence(op, form):
    """Two calls, the second started from the first's final state, equal one call."""
    fn = OPS[op][1] if form == "chunk" else OPS[op][2]
    kwargs = {"chunk_size": CHUNK} if form == "chunk" else {}
    inputs = make_inputs(op, 40, 1.0)
    whole, whole_state = fn(**inputs, output_final_state=True, **kwargs)
    first = {name: x[:, :, :23] for name, x in inputs.items() if name != "initial_state"}
    second = {name: x[:, :, 23:] for name, x in inputs.items() if name != "initial_state"}
    o1, state = fn(
        **first, initial_state=inputs["initial_state"], output_final_state=True, **kwargs
    )
    o2, state = fn(**second, initial_state=state, output_final_state=True, **kwargs)
    torch.testing.assert_close(torch.cat([o1, o2], dim=2), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, whole_state, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 5, 24, 64, 100])
@pytest.mark.parametrize("normalizer", [10.0, 0.01])  # factored scores / sub-chunk scheme
def test_gla_chunk_form_at_any_chunk_size(chunk_size, normalizer):
    """Prime, composite and square chunk sizes (sub-chunks of 1, 4 and 8 rows), and C > T."""
    inputs = make_inputs("gla", 50, normalizer)
    o_ref, state_ref = naive_gla(**inputs, output_final_state=True)
    o, state = chunk_gla(**inputs, output_final_state=True, chunk_size=chunk_size)
    assert_close(o, o_ref, "o")
    assert_close(state, state_ref, "final state")


def test_linear_attention_oracle_matches_the_quadratic_form():
    """The quadratic form of causal linear attention (Katharopoulos et al. 2020, §3.2-3.3):
    o_i = sum_{j <= i} (q_i . k_j) v_j / sum_{j <= i} (q_i . k_j)."""
    inputs = {name: x.double() for name, x in make_inputs("linear", 20, 1.0).items()}
    inputs.pop("initial_state")
    q, k, v = inputs["q"], inputs["k"], inputs["v"]
    similarity = (q @ k.transpose(-1, -2)).tril()  # (B, H, T, T)
    expected = similarity @ v / (similarity.sum(-1, keepdim=True) + 1e-6)
    o, _ = naive_linear_attention(q, k, v)
    torch.testing.assert_close(o, expected)


def test_gla_oracle_matches_the_quadratic_form():
    """GLA's quadratic parallel form (Yang et al. 2023, §4), with b the cumulative log-gates:
    o_i = sum_{j <= i} ((q_i * exp(b_i - b_j)) . k_j) v_j * scale."""
    inputs = {name: x.double() for name, x in make_inputs("gla", 20, 1.0).items()}
    inputs.pop("initial_state")
    q, k, v, g = inputs["q"], inputs["k"], inputs["v"], inputs["g"]
    b = g.cumsum(dim=2)  # (B, H, T, Dk)
    decay = (b[:, :, :, None, :] - b[:, :, None, :, :]).exp()  # (B, H, T, T, Dk): i, j
    scores = (q[:, :, :, None, :] * decay * k[:, :, None, :, :]).sum(-1).tril()  # (B, H, T, T)
    expected = scores @ v * KEY_DIM**-0.5
    o, _ = naive_gla(q, k, v, g)
    torch.testing.assert_close(o, expected)


def test_delta_rule_overwrites_the_value_of_a_repeated_key():
    """With beta = 1 and no decay, writing (k, v1) then (k, v2) makes S^T k = v2 exactly."""
    k = F.normalize(torch.randn(1, 1, 1, KEY_DIM, dtype=torch.float64), dim=-1).expand(1, 1, 2, -1)
    v = torch.randn(1, 1, 2, VALUE_DIM, dtype=torch.float64)
    g, beta = torch.zeros(1, 1, 2, dtype=torch.float64), torch.ones(1, 1, 2, dtype=torch.float64)
    for fn in (naive_gated_delta_rule, step_gated_delta_rule):
        o, _ = fn(k, k, v, g, beta, scale=1.0)  # query with the key itself
        torch.testing.assert_close(o[0, 0, 1], v[0, 0, 1])


def test_gated_delta_rule_only_decays_when_beta_is_zero():
    inputs = {name: x.double() for name, x in make_inputs("gated_deltanet", 9, 1.0).items()}
    inputs["beta"] = torch.zeros_like(inputs["beta"])
    o, _ = naive_gated_delta_rule(**inputs)
    decay = inputs["g"].cumsum(dim=2).exp()[..., None]  # (B, H, T, 1)
    expected = decay * (inputs["q"] @ inputs["initial_state"]) * KEY_DIM**-0.5
    torch.testing.assert_close(o, expected)


@pytest.mark.parametrize("op", list(OPS))
def test_low_precision_inputs_use_a_float32_state(op):
    inputs = {name: x.bfloat16() for name, x in make_inputs(op, 20, 1.0).items()}
    o, state = OPS[op][1](**inputs, output_final_state=True, chunk_size=CHUNK)
    assert o.dtype == torch.bfloat16 and state.dtype == torch.float32


@pytest.mark.parametrize("op", list(OPS))
def test_bad_arguments_are_named(op):
    inputs = make_inputs(op, 10, 1.0)
    chunk = OPS[op][1]
    with pytest.raises(ValueError, match="chunk_size"):
        chunk(**inputs, chunk_size=0)
    with pytest.raises(ValueError, match="initial_state"):
        chunk(**{**inputs, "initial_state": inputs["initial_state"][:, :1]})
    with pytest.raises(ValueError, match="k must have the shape of q"):
        chunk(**{**inputs, "k": inputs["k"][..., :3]})
    with pytest.raises(ValueError, match="v must share"):
        chunk(**{**inputs, "v": inputs["v"][:, :, :4]})
    with pytest.raises(ValueError, match="q must have shape"):
        chunk(**{**inputs, "q": inputs["q"][0]})
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        chunk(**{**inputs, "q": inputs["q"].tolist()})
    if op != "linear":
        with pytest.raises(ValueError, match="g must have shape"):
            chunk(**{**inputs, "g": inputs["g"][:, :, :4]})
    if op == "gated_deltanet":
        with pytest.raises(ValueError, match="beta must have shape"):
            chunk(**{**inputs, "beta": inputs["beta"][..., None]})
