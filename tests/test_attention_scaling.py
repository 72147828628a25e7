"""The scaling-benchmark helpers: inputs, one measured point, argument checks (no timings)."""

from __future__ import annotations

import pytest
import torch

from picollm.attention_scaling import (
    METHODS,
    make_inputs,
    measure_point,
    scaling_points,
)


@pytest.mark.parametrize("method", METHODS)
def test_inputs_have_the_op_shapes(method):
    inputs = make_inputs(method, seq_len=10, n_heads=2, head_dim=4)
    for x in inputs[:3]:
        assert x.shape == (1, 2, 10, 4)
    if method == "gla":
        assert inputs[3].shape == (1, 2, 10, 4) and (inputs[3] <= 0).all()
    if method == "gated_deltanet":
        g, beta = inputs[3:]
        assert g.shape == beta.shape == (1, 2, 10) and (g <= 0).all()
        torch.testing.assert_close(inputs[1].norm(dim=-1), torch.ones(1, 2, 10))


@pytest.mark.parametrize("method", METHODS)
def test_a_point_reports_time_and_memory(method):
    point = measure_point(method, seq_len=70, d_model=16, n_heads=2, repeats=1)
    assert point["method"] == method and point["seq_len"] == 70
    assert point["fwd_bwd_seconds"] > 0 and point["peak_mem_mb"] >= 0
    assert point["torch_threads"] >= 1


def test_scaling_points_measure_each_point_in_a_fresh_process():
    (point,) = scaling_points([40], d_model=16, n_heads=2, methods=["gla"], repeats=0, threads=1)
    assert point["method"] == "gla" and point["seq_len"] == 40 and point["torch_threads"] == 1


def test_unknown_methods_are_named():
    with pytest.raises(ValueError, match="flash"):
        scaling_points([64], methods=["flash"])
    with pytest.raises(ValueError, match="method must be one of"):
        make_inputs("flash", 8, 1, 4)
    with pytest.raises(ValueError, match="n_heads=3 must divide d_model=16"):
        measure_point("gla", 8, d_model=16, n_heads=3)
