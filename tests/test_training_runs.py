"""Every training run of the params (each model, each sweep variant) is built before any work."""

import copy

import pytest

from picollm.config import ConfigError, model_config, training_config, validate_params
from picollm.studies import point_label, training_keys
from picollm.training.config import TRAINING_KEYS
from picollm.training.runs import check_training_runs, sweep_variant, training_runs

GOOD = {"models": {"lstm": {"type": "lstm", "embed_size": 8}}}


TRANSFORMER = {"type": "transformer", "d_model": 16, "n_heads": 2, "n_blocks": 1}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"n_heads": 3}, ["models.t:", "n_heads=3 must divide d_model=16"]),
        ({"attention_options": {"colour": 1}}, ["models.t:", "unexpected keyword", "colour"]),
        ({"training": {"warmup_steps": 200}}, ["models.t:", "warmup_steps (200)", "200"]),
    ],
)
def test_every_model_is_built_during_validation(change, words):
    """What only the model's (or TrainConfig's) own code rejects is found before any work."""
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = {**TRANSFORMER, **change}
    params["training"] = {"max_steps_per_epoch": 100, "epochs": 2}
    with pytest.raises(ConfigError) as caught:
        check_training_runs(validate_params(params))
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"n_heads": [2, 3]}, ["sweep.values.n_heads[1]:", "n_heads=3 must divide"]),
        ({"colour": [1]}, ["sweep.values.colour[0]:", "unknown key(s) ['colour']"]),
        ({"position": ["spiral"]}, ["sweep.values.position[0]:", "'spiral'", "must be one of"]),
        ({"type": ["lstm"]}, ["sweep.values.type[0]:", "unknown key(s)", "d_model"]),
        ({"batch_size": [8.0]}, ["sweep.values.batch_size[0]:", "batch_size = 8.0"]),
        ({"warmup_steps": [500]}, ["sweep.values.warmup_steps[0]:", "warmup_steps (500)"]),
    ],
)
def test_every_sweep_variant_is_built_during_validation(values, words):
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = dict(TRANSFORMER)
    params["sweep"] = {"model": "t", "values": values}
    with pytest.raises(ConfigError) as caught:
        check_training_runs(validate_params(params))
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    assert "models.t:" not in message, "the base model itself is fine"


def test_a_broken_base_model_is_reported_once_not_once_per_variant():
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = {**TRANSFORMER, "n_heads": 3}
    params["sweep"] = {"model": "t", "values": {"d_model": [6, 9], "n_blocks": [2]}}
    with pytest.raises(ConfigError, match=r"1 training run\(s\)"):
        check_training_runs(validate_params(params))


def test_sweep_variant_changes_one_key_where_it_belongs():
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = dict(TRANSFORMER)
    params["sweep"] = {
        "model": "t",
        "values": {"d_model": [32], "learning_rate": [0.1], "data_fraction": [0.5]},
    }
    params = validate_params(params)
    arch = sweep_variant(params, "d_model", 0)
    assert model_config(arch.params, "t")["d_model"] == 32
    assert training_config(arch.params, "t")["data_fraction"] == 1.0
    lr = sweep_variant(params, "learning_rate", 0)
    assert training_config(lr.params, "t")["learning_rate"] == 0.1
    assert model_config(lr.params, "t") == model_config(params, "t")
    fraction = sweep_variant(params, "data_fraction", 0)
    assert training_config(fraction.params, "t")["data_fraction"] == 0.5
    assert params["models"]["t"]["d_model"] == 16, "the params themselves are left alone"
    with pytest.raises(ConfigError, match="no point number 1"):
        sweep_variant(params, "d_model", 1)


def test_a_point_may_change_several_keys_after_the_common_changes_and_sets_the_seed():
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = dict(TRANSFORMER)
    params["sweep"] = {
        "model": "t",
        "seeds": [4, 5],
        "common": {"data_fraction": 0.5, "n_blocks": 3},
        "values": {"norm": [{"norm": "post", "warmup_steps": 0, "n_blocks": 1}, "pre"]},
    }
    params = validate_params(params)
    post = sweep_variant(params, "norm", 0, seed=5)
    assert model_config(post.params, "t") == {
        **model_config(params, "t"), "norm": "post", "n_blocks": 1
    }  # fmt: skip
    training = training_config(post.params, "t")
    assert (training["warmup_steps"], training["data_fraction"], training["seed"]) == (0, 0.5, 5)
    pre = sweep_variant(params, "norm", 1)
    assert model_config(pre.params, "t")["n_blocks"] == 3, "the common change stays"
    assert training_config(pre.params, "t")["seed"] == params["training"]["seed"]
    assert [point_label("norm", params["sweep"]["values"]["norm"], i) for i in (0, 1)] == [
        "post, warmup_steps=0, n_blocks=1",
        "pre, warmup_steps=None, n_blocks=None",
    ]


def test_point_labels_name_only_what_differs_between_the_points():
    points = [{"d_model": 16, "data_fraction": 0.01}, {"d_model": 32, "data_fraction": 0.01}]
    assert [point_label("d_model", points, i) for i in (0, 1)] == ["16", "32"]
    assert point_label("position", ["rope", "nope"], 1) == "nope"
    assert point_label("lr", [0.1], 0) == "0.1"


def test_a_study_point_that_breaks_the_schema_is_named():
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = dict(TRANSFORMER)
    params["sweep"] = {"model": "t", "values": {"size": [{"d_model": 32}, {"d_modle": 8}]}}
    with pytest.raises(ConfigError, match=r"sweep.values.size\[1\]"):
        check_training_runs(validate_params(params))
    params["sweep"]["values"] = {"data_fraction": [0.5, 0]}
    with pytest.raises(ConfigError, match=r"sweep.values.data_fraction\[1\].*data_fraction"):
        check_training_runs(validate_params(params))


def test_training_runs_lists_each_model_then_each_sweep_value():
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = dict(TRANSFORMER)
    params["sweep"] = {"model": "t", "values": {"d_model": [8, 32], "data_fraction": [0.5]}}
    labels = [run.label for run in training_runs(validate_params(params))]
    assert labels == [
        "models.lstm",
        "models.t",
        "sweep.values.d_model[0]",
        "sweep.values.d_model[1]",
        "sweep.values.data_fraction[0]",
    ]


def test_the_meta_build_allocates_nothing():
    """A model far too big to allocate is still checked, in no time and no memory."""
    params = copy.deepcopy(GOOD)
    params["models"]["t"] = {**TRANSFORMER, "d_model": 65536, "n_heads": 256, "n_blocks": 24}
    check_training_runs(validate_params(params))


def test_picollm_validate_checks_each_runs_length_on_the_built_split(project, capsys):
    from picollm.cli import main

    assert main(["validate"]) == 0  # the fixture's runs: 3 steps, warm-up 1
    params = project / "params.yaml"
    old = "training: {batch_size: 2, max_steps_per_epoch: 3, warmup_steps: 1,"
    new = "training: {batch_size: 16, max_steps_per_epoch: 40, warmup_steps: 2,"
    assert old in params.read_text()
    params.write_text(params.read_text().replace(old, new))
    assert main(["validate"]) == 2
    error = capsys.readouterr().err
    assert "models.lstm: warmup_steps (2) must be below the 2 steps it trains for" in error
    assert "on the current split (" in error
    assert main(["validate", "--split", "elsewhere/split.json"]) == 0  # no split: not checked


def test_the_schema_and_the_train_config_name_the_same_training_keys():
    assert training_keys() == TRAINING_KEYS
