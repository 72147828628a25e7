"""Figure modules return exactly the series they draw; the figure stage writes them as ``data``."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from picollm.figures import (
    attention_quality,
    attention_scaling,
    diversity_vs_p,
    hyperparams,
    loss_curves,
    overfit_gap,
)
from picollm.figures.series import Series, curve_over_seeds, separations
from picollm.stats import band

KEYS = ["id", "label", "x_label", "y_label", "x", "y", "low", "high"]


def curve(offset: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": [0, 10, 20, 30],
            "tokens_seen": [0, 640, 1280, 1920],
            "train_loss": [5.0 + offset, 4.0 + offset, 3.0 + offset, 2.0 + offset],
            "test_loss": [5.1 + offset, 4.0 + offset, 3.5 + offset, 3.8 + offset],
        }
    )


def by_id(series: list[Series]) -> dict[str, Series]:
    ids = [s.id for s in series]
    assert len(ids) == len(set(ids)), f"duplicate series ids {ids}"
    return {s.id: s for s in series}


def test_series_records_mean_and_band_over_seeds_and_none_for_one_seed():
    series = Series.over_seeds("s", "S", "x", "y", [1, 2], [[1.0, 2.0, 4.0], [3.0]])
    expected = band([1.0, 2.0, 4.0])
    record = series.to_dict()
    assert list(record) == KEYS
    assert record["y"] == [pytest.approx(7 / 3), 3.0]
    assert record["low"] == [pytest.approx(expected.low), None]
    assert record["high"] == [pytest.approx(expected.high), None]


def test_series_json_has_no_nan():
    record = Series.of("s", "S", "x", "y", [1, 2], [float("nan"), 1.0]).to_dict()
    assert record["y"] == [None, 1.0]
    json.dumps(record, allow_nan=False)


def test_curve_over_seeds_keeps_steps_every_seed_has():
    short = curve(1.0).iloc[:3]
    series = curve_over_seeds("c", "c", "step", "loss", [curve(), short], "step", "train_loss")
    assert series.x == (0, 10, 20)
    assert series.y == pytest.approx((5.5, 4.5, 3.5))
    assert all(low is not None for low in series.low)


def test_separations_name_the_points_whose_bands_part():
    a = Series.over_seeds("a", "a", "x", "y", [1, 2], [[1.0, 1.1, 0.9], [1.0, 1.1, 0.9]])
    b = Series.over_seeds("b", "b", "x", "y", [1, 2], [[3.0, 3.1, 2.9], [1.0, 1.2, 0.9]])
    single = Series.of("c", "c", "x", "y", [1, 2], [0.0, 0.0])
    assert separations([a, b, single]) == [
        {"ids": ["a", "b"], "separated_at": [1], "compared_at": [1, 2]}
    ]


def test_overfit_gap_returns_curves_with_bands_and_marks_early_stopping(tmp_path):
    drawn = by_id(
        overfit_gap.draw(
            {"lstm": [curve(), curve(0.1)], "kgram": curve()}, tmp_path / "f.png", dpi=40
        )
    )
    assert set(drawn) == {"lstm_train", "lstm_test", "kgram_train", "kgram_test"}
    assert drawn["lstm_test"].y == pytest.approx((5.15, 4.05, 3.55, 3.85))
    assert drawn["lstm_test"].has_band and not drawn["kgram_test"].has_band
    assert overfit_gap.early_stopping_step(drawn["kgram_test"]) == 20


def run_record(key, value, parameters, tokens, gap, seed=0, index=None):
    """A sweep run.json of point ``value`` of study ``key`` (its index: the value's rank in
    the study unless given)."""
    return {
        "model": "t",
        "architecture": {"d_model": 32},
        "training": {"learning_rate": 1e-3, "seed": seed},
        "train_tokens": tokens,
        "final": {
            "parameters": parameters,
            "gap": gap,
            "test_loss": 3.0 + gap,
            "train_loss": 3.0,
            "tokens_per_s": 1000.0,
        },
        "sweep": {
            "model": "t",
            "key": key,
            "index": index if index is not None else value,
            "point": value,
            "label": str(value),
            "seed": seed,
        },
    }


def test_overfit_gap_ladders_are_seed_means_with_verdicts(tmp_path):
    runs = [
        run_record("d_model", 64, 8000, 1000, gap, seed)
        for seed, gap in enumerate([0.3, 0.32, 0.28])
    ] + [
        run_record("d_model", 32, 2000, 1000, 0.1),
        run_record("data_fraction", 0.25, 2000, 250, 0.5),
        run_record("data_fraction", 0.5, 2000, 500, 0.2),
        run_record("data_fraction", 1.0, 2000, 1000, 0.1),
        run_record("position", "rope", 2000, 1000, 0.1, index=0),  # not a ladder
        run_record("learning_rate", 0.1, 2000, 1000, 0.1),  # a training key: not a ladder
    ]
    drawn = by_id(overfit_gap.draw({"t": curve()}, tmp_path / "f.png", 40, runs=runs))
    assert set(drawn) == {"t_train", "t_test", "gap_vs_parameters", "gap_vs_tokens"}
    params, tokens = drawn["gap_vs_parameters"], drawn["gap_vs_tokens"]
    assert params.x == (2000, 8000) and params.y == pytest.approx((0.1, 0.3))
    assert params.low[0] is None and params.low[1] is not None
    assert "embeddings included" in params.x_label
    assert tokens.x == (250, 500, 1000) and tokens.y == pytest.approx((0.5, 0.2, 0.1))
    assert overfit_gap.ladder_verdict(params).endswith("as expected")
    assert overfit_gap.ladder_verdict(tokens) == "gap shrinks with training tokens: as expected"
    flipped = Series.of("gap_vs_tokens", "g", "t", "g", [1, 2], [0.1, 0.5])
    assert "NOT" in overfit_gap.ladder_verdict(flipped)


def test_loss_curves_and_attention_quality_return_their_curves(tmp_path):
    drawn = by_id(loss_curves.draw({"lstm": curve()}, 2.0, tmp_path / "a.png", dpi=40))
    assert drawn["lstm_test"].x == (0, 640, 1280, 1920)
    assert drawn["lstm_train"].y == (5.0, 4.0, 3.0, 2.0)
    drawn = by_id(
        attention_quality.draw(
            {"softmax": curve(), "gla": [curve(), curve(0.2)]},
            {"softmax": 10, "gla": 12},
            tmp_path / "b.png",
            dpi=40,
        )  # fmt: skip
    )
    assert set(drawn) == {"softmax_test", "softmax_train", "gla_test", "gla_train"}
    assert drawn["gla_test"].has_band


def test_diversity_vs_p_places_greedy_at_zero(tmp_path):
    rows = [
        {"p": "greedy", "distinct_2": 0.2, "repetition_4": 0.5, "mean_logprob": -1.0},
        {"p": 0.9, "distinct_2": 0.6, "repetition_4": 0.1, "mean_logprob": -3.0},
    ]
    drawn = by_id(diversity_vs_p.draw({"lstm": rows}, tmp_path / "d.png", dpi=40))
    assert drawn["lstm_distinct_2"].x == (0.0, 0.9)
    assert drawn["lstm_mean_logprob"].y == (-1.0, -3.0)


def test_attention_scaling_returns_each_method_and_measure(tmp_path):
    points = pd.DataFrame(
        {
            "method": ["sdpa", "sdpa", "gla", "gla"],
            "seq_len": [64, 32, 32, 64],
            "fwd_bwd_seconds": [0.4, 0.1, 0.2, 0.4],
            "peak_mem_mb": [4.0, 1.0, 2.0, 3.0],
            "torch_threads": [1, 1, 1, 1],
        }
    )
    drawn = by_id(attention_scaling.draw(points, tmp_path / "s.png", dpi=40))
    assert drawn["sdpa_fwd_bwd_seconds"].x == (32, 64)
    assert drawn["sdpa_fwd_bwd_seconds"].y == (0.1, 0.4)
    assert set(drawn) == {
        f"{m}_{c}" for m in ("sdpa", "gla") for c in ("fwd_bwd_seconds", "peak_mem_mb")
    }


def test_hyperparams_draws_categorical_keys_as_unjoined_points(tmp_path, monkeypatch):
    runs = [
        run_record("position", "rope", 2000, 1000, 0.05, index=1),
        run_record("position", "learned", 2000, 1000, 0.1, index=0),
        run_record("d_model", 64, 8000, 1000, 0.2),
        run_record("d_model", 32, 2000, 1000, 0.1),
    ]
    figures = []
    original = hyperparams.save
    monkeypatch.setattr(
        hyperparams, "save", lambda fig, *a: (figures.append(fig), original(fig, *a))
    )
    drawn = by_id(hyperparams.draw(runs, tmp_path / "h.png", dpi=40))
    assert drawn["position_test_loss"].x == ("learned", "rope")  # in the order of the points
    assert drawn["d_model_test_loss"].x == (32, 64)
    assert "position_tokens_per_s" not in drawn  # one seed: speed noise unknown
    position_column = figures[0].axes[0]  # keys in run order: position first
    joined = [
        line
        for line in position_column.get_lines()
        if len(line.get_xdata()) > 1 and line.get_linestyle() != "None"
    ]
    assert not joined
    size_column = figures[0].axes[1]
    assert any(len(line.get_xdata()) == 2 for line in size_column.get_lines())


def test_hyperparams_draws_tokens_per_s_where_seeds_separate_it(tmp_path):
    runs = []
    for value, speeds in ((64, [100.0, 101.0, 99.0]), (32, [1000.0, 1001.0])):
        for seed, speed in enumerate(speeds):
            record = run_record("d_model", value, 8000, 1000, 0.2, seed)
            record["final"]["tokens_per_s"] = speed
            runs.append(record)
    drawn = by_id(hyperparams.draw(runs, tmp_path / "h.png", dpi=40))
    assert drawn["d_model_tokens_per_s"].has_band


def test_figure_stage_writes_the_series_into_the_sidecar(tmp_path):
    from picollm.stages import figure

    results = tmp_path / "results"
    (results / "models" / "lstm").mkdir(parents=True)
    (results / "samples").mkdir()
    curve().to_csv(results / "models" / "lstm" / "curve.tsv", sep="\t", index=False)
    rows = [{"p": p, "copy_rate": {"train": 0.5, "test": 0.1, "n": 8}} for p in ("greedy", 0.9)]
    (results / "samples" / "lstm.json").write_text(json.dumps({"model": "lstm", "by_p": rows}))
    corpus = {"tinystories_source": "excerpt"}
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    split = {"corpus": str(tmp_path / "corpus.parquet"), "sources": ["tinystories"]}
    split["vocab"] = {"name": "compact-64"}
    (tmp_path / "split.json").write_text(json.dumps(split))
    args = argparse.Namespace(
        kind="overfit_gap", results=results, split=tmp_path / "split.json",
        out=tmp_path / "f.png", lineage=tmp_path / "f.json",
    )  # fmt: skip
    params = {
        "figures": {"dpi": 40},
        "models": {"lstm": {"type": "lstm"}},
        "sweep": {"model": None, "seeds": [1], "values": {}},
    }
    figure.run(args, params)
    sidecar = json.loads((tmp_path / "f.json").read_text())
    assert str(results / "models" / "lstm" / "curve.tsv") in sidecar["inputs"]
    assert [s["id"] for s in sidecar["data"]] == [
        "lstm_train", "lstm_test", "lstm_copy_train", "lstm_copy_test"
    ]  # fmt: skip
    assert sidecar["data"][1]["y"] == [5.1, 4.0, 3.5, 3.8]
    assert sidecar["data"][2]["x"] == [0.0, 0.9] and sidecar["data"][2]["y"] == [0.5, 0.5]
    assert list(sidecar["data"][0]) == KEYS
    assert figure.data_note(tmp_path / "split.json") == (
        "TinyStories (excerpt), vocabulary compact-64"
    )
    assert sidecar["separations"] == []


def test_overfit_gap_draws_copy_rates_with_the_test_control(tmp_path):
    seeds = [
        [{"p": "greedy", "train": 0.5, "test": 0.04}, {"p": 0.9, "train": 0.2, "test": 0.03}],
        [{"p": "greedy", "train": 0.6, "test": 0.05}, {"p": 0.9, "train": 0.3, "test": 0.04}],
    ]
    drawn = by_id(overfit_gap.draw({"t": curve()}, tmp_path / "f.png", 40, copy_rates={"t": seeds}))
    train, control = drawn["t_copy_train"], drawn["t_copy_test"]
    assert train.x == (0.0, 0.9) and train.y == pytest.approx((0.55, 0.25))
    assert control.y == pytest.approx((0.045, 0.035)) and control.has_band
    short = [[{"p": "greedy", "train": None, "test": None}, {"p": 0.9, "train": 0.1, "test": None}]]
    drawn = by_id(overfit_gap.draw({"t": curve()}, tmp_path / "g.png", 40, copy_rates={"t": short}))
    assert drawn["t_copy_train"].x == (0.9,) and "t_copy_test" not in drawn  # None: no n-gram


def position_record(losses, stops_at=None):
    stops = len(losses) if stops_at is None else stops_at
    loss = [v if i < stops else None for i, v in enumerate(losses)]
    return {"loss": loss, "stderr": [None] * len(losses), "windows": 3, "stops_at": stops}


def test_length_generalization_bins_seeds_and_stops_learned_positions(tmp_path):
    from picollm.figures import length_generalization

    rising = [3.0] * 8 + [4.0] * 24  # T = 8, windows of 4T
    results = {
        "rope": [position_record([v + d for v in rising]) for d in (0.0, 0.1, 0.05)],
        "learned": [position_record([3.0] * 32, stops_at=8)] * 2,
    }
    drawn = by_id(length_generalization.draw(results, 8, tmp_path / "l.png", dpi=40, width=4))
    rope, learned = drawn["length_rope"], drawn["length_learned"]
    assert rope.x == (4, 8, 12, 16, 20, 24, 28, 32)
    assert rope.y == pytest.approx((3.05, 3.05) + (4.05,) * 6)
    assert learned.x == (4, 8)  # no point past T: stopped, not extrapolated
    found = length_generalization.findings([rope, learned], 8)
    assert found == ["rope +1.00 nats at 32 vs T (beyond the bands)", "learned stops at T"]
    single = Series.of("length_nope", "nope", "x", "y", [8, 32], [3.0, 3.0])
    assert length_generalization.findings([single], 8) == [
        "nope +0.00 nats at 32 vs T (one seed: no band)"
    ]


def test_norm_warmup_draws_four_variants_and_init_gradients(tmp_path):
    from picollm.figures import norm_warmup

    curves = {
        "pre, warm-up": [curve(), curve(0.01)],
        "post, no warm-up": [curve(1.0), curve(1.02)],
    }
    init = {"pre": [[0.3, 0.28], [0.31, 0.27]], "post": [[0.01, 0.01], [0.011, 0.009]]}
    drawn = by_id(norm_warmup.draw(curves, tmp_path / "n.png", dpi=40, init_norms=init))
    assert set(drawn) == {
        "pre, warm-up_test", "post, no warm-up_test", "grad_init_pre", "grad_init_post",
    }  # fmt: skip
    assert drawn["grad_init_pre"].x == (0, 1) and drawn["grad_init_pre"].y == pytest.approx(
        (0.305, 0.275)
    )
    verdicts = norm_warmup.final_verdicts(
        [drawn["pre, warm-up_test"], drawn["post, no warm-up_test"]]
    )
    assert verdicts == [
        "final losses apart beyond their bands:",
        "pre, warm-up vs post, no warm-up",
    ]


def test_the_figure_table_says_what_each_figure_reads_and_when_it_is_drawn():
    from picollm.config import validate_params
    from picollm.stages.figure import FIGURES, default_figures

    params = validate_params({"models": {"lstm": {"type": "lstm"}}})
    assert default_figures(params) == [
        "overfit_gap", "loss_curves", "diversity_vs_p", "attention_scaling"
    ]  # fmt: skip
    assert FIGURES["overfit_gap"].inputs(params, "r", "s.json") == {
        "curves": ["r/models/lstm/curve.tsv"], "runs": [], "samples": ["r/samples/lstm.json"],
        "split": ["s.json"],
    }  # fmt: skip
    params["models"]["t"] = {"type": "transformer", "d_model": 16, "n_heads": 2}
    params["sweep"] = {
        "model": "t",
        "seeds": [4, 5],
        "values": {
            "d_model": [{"d_model": 8, "data_fraction": 0.5}],
            "attention": ["gla", "linear"],
            "position": ["rope", "nope"],
            "norm_warmup": [{"norm": "post"}],
            "learning_rate": [0.01],
        },
    }
    params["interpretability"]["model"] = "t"
    assert default_figures(params) == list(FIGURES)
    study = FIGURES["attention_quality"].inputs(params, "r", "s.json")
    assert study["runs"] == [
        f"r/sweeps/t/attention/{seed}/{index}/run.json" for seed in (4, 5) for index in (0, 1)
    ]
    assert study["curves"] == [run.replace("run.json", "curve.tsv") for run in study["runs"]]
    ladders = FIGURES["overfit_gap"].inputs(params, "r", "s.json")["runs"]
    assert ladders == ["r/sweeps/t/d_model/4/0/run.json", "r/sweeps/t/d_model/5/0/run.json"]
    assert FIGURES["sae_features"].inputs(params, "r", "s.json") == {
        "records": ["r/interpret/t/features.json"]
    }  # fmt: skip
