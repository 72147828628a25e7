"""params.yaml validation: bad values fail fast with messages that name the key."""

import copy

import pytest
import yaml

from picollm.config import ConfigError, load_params, prune, schema, validate_params

GOOD = {"models": {"lstm": {"type": "lstm", "embed_size": 8}}}


def with_change(path: str, value):
    """GOOD with the dotted ``path`` set to ``value``."""
    params = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return params


BAD = [
    # (dotted key, bad value, words the message must contain)
    ("data.block_size", 1, ["data.block_size", "1", ">= 2"]),
    ("data.block_size", "32", ["data.block_size", "'32'", "integer"]),
    ("data.input_files", "3seqs.txt", ["data.input_files", "array"]),
    ("data.colour", "red", ["unknown key", "colour", "under data"]),
    ("split.test_fraction", 1.0, ["split.test_fraction", "< 1"]),
    ("split.test_fraction", 0, ["split.test_fraction", "> 0"]),
    ("training.learning_rate", -0.1, ["training.learning_rate", "> 0"]),
    ("training.batch_size", 2.5, ["training.batch_size", "integer"]),
    ("training.max_steps_per_epoch", 0, ["training.max_steps_per_epoch", ">= 1"]),
    ("models.lstm.type", "gpt5", ["models.lstm.type", "'gpt5'", "must be one of"]),
    ("models.lstm.embed_size", 0, ["models.lstm.embed_size", ">= 1"]),
    ("models.lstm.heads", 4, ["unknown key", "heads", "models.lstm"]),
    ("models.lstm.training.epochs", 0, ["models.lstm.training.epochs", ">= 1"]),
    ("models.Big Model", {"type": "lstm"}, ["models", "'Big Model'", "pattern"]),
    ("figures.dpi", 10, ["figures.dpi", ">= 50"]),
    ("surprise", 1, ["unknown key", "surprise", "top level"]),
]


@pytest.mark.parametrize(("key", "value", "words"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_values_are_rejected_with_the_key_named(key, value, words):
    with pytest.raises(ConfigError) as caught:
        validate_params(with_change(key, value))
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_missing_models_section():
    with pytest.raises(ConfigError, match="missing required key.*models"):
        validate_params({})


def test_every_problem_is_listed_at_once():
    params = with_change("training.learning_rate", -1)
    params["split"] = {"test_fraction": 2}
    with pytest.raises(ConfigError, match="2 problem"):
        validate_params(params)


def test_defaults_are_filled_but_model_training_overrides_stay_sparse():
    params = validate_params(with_change("models.lstm.training", {"learning_rate": 0.01}))
    assert params["training"]["batch_size"] == 16
    assert params["data"]["block_size"] == 32
    assert params["models"]["lstm"]["num_layers"] == 1
    assert params["models"]["lstm"]["training"] == {"learning_rate": 0.01}


def test_every_key_is_described():
    """Each property in the schema carries a description (the schema is the documentation)."""
    missing = []

    def resolve(node):
        ref = node.get("$ref", "")
        return {**schema()["$defs"][ref.rsplit("/", 1)[-1]], **node} if ref else node

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            sub = resolve(sub)
            if "description" not in sub and key != "type":
                missing.append(f"{path}.{key}")
            walk(sub, f"{path}.{key}")

    walk(schema(), "")
    for name, definition in schema()["$defs"].items():
        walk(definition, f"$defs.{name}")
    assert not missing


def test_load_params_names_the_file_on_yaml_errors(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  block_size: 32\nmodels: {lstm: [unclosed\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line 4, column 1: not valid YAML (")
    assert "\n" not in message and "<unicode string>" not in message
    with pytest.raises(ConfigError, match="no such file"):
        load_params(tmp_path / "absent.yaml")


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("models: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_prune_keeps_only_declared_keys():
    params = validate_params(GOOD)
    pruned = prune(params, ["data.block_size", "models.lstm"])
    assert pruned == {"data": {"block_size": 32}, "models": {"lstm": params["models"]["lstm"]}}
    with pytest.raises(ConfigError, match=r"no key 'models.absent' \(under models: lstm\)"):
        prune(params, ["models.absent"])


def test_the_shipped_params_file_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    params = load_params(root / "params.yaml")
    assert params["models"]
    raw = yaml.safe_load((root / "params.yaml").read_text())
    assert set(raw) == set(params), "params.yaml spells out every section (DVC tracks only those)"


def test_schema_defaults_match_the_library_defaults():
    """The schema documents each default; the config dataclasses must agree with it."""
    import dataclasses

    from picollm.models.kgram import KGramConfig
    from picollm.models.lstm import LSTMConfig
    from picollm.models.transformer import TransformerConfig
    from picollm.training import TrainConfig

    def schema_defaults(name):
        properties = schema()["$defs"][name]["properties"]
        return {k: v["default"] for k, v in properties.items() if "default" in v}

    pairs = [
        ("lstm", LSTMConfig),
        ("kgram_mlp", KGramConfig),
        ("transformer", TransformerConfig),
        ("training", TrainConfig),
    ]
    for name, config in pairs:
        library = {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
        for key, default in schema_defaults(name).items():
            expected = list(library[key]) if isinstance(library[key], tuple) else library[key]
            assert default == expected, f"{name}.{key}: schema {default!r} != library {expected!r}"


@pytest.mark.parametrize(
    ("sweep", "words"),
    [
        ({"model": "absent", "values": {"d_model": [32]}}, ["sweep.model", "'absent'", "lstm"]),
        ({"model": "lstm", "values": {"Bad.Key": [1]}}, ["sweep.values", "'Bad.Key'", "pattern"]),
        ({"model": "t", "values": {"attention": ["gla"]}}, ["attention", "['gla']", "models.t"]),
    ],
)
def test_sweep_cross_checks(sweep, words):
    params = with_change("sweep", sweep)
    params["models"]["t"] = {"type": "transformer", "position": "rope"}
    with pytest.raises(ConfigError) as caught:
        validate_params(params)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("study", "words"),
    [
        ({"model": "absent"}, ["interpretability.model", "'absent'", "lstm", "null"]),
        ({"model": "lstm"}, ["interpretability.model", "'lstm'", "transformer with softmax"]),
        ({"model": "g"}, ["interpretability.model", "'g'", "softmax attention"]),
        ({"model": "t", "layer": 3}, ["interpretability.layer = 3", "3 blocks", "[-3, 2]"]),
        ({"model": "t", "layer": -4}, ["interpretability.layer = -4", "[-3, 2]"]),
    ],
)
def test_interpretability_cross_checks(study, words):
    params = with_change("interpretability", study)
    params["models"]["t"] = {"type": "transformer", "n_blocks": 3}
    params["models"]["g"] = {"type": "transformer", "attention": "gla"}
    with pytest.raises(ConfigError) as caught:
        validate_params(params)
    for word in words:
        assert word in str(caught.value)
    params["interpretability"] = {"model": "t", "layer": -3}
    assert validate_params(params)["interpretability"]["layer"] == -3


WHOLE_FLOATS = [
    "training.batch_size",
    "models.lstm.embed_size",
    "sampling.samples_per_prompt",
    "sampling.max_new_tokens",
    "interpretability.steps",
]


@pytest.mark.parametrize("key", WHOLE_FLOATS)
def test_a_whole_number_float_is_rejected_by_name(key):
    """16.0 is not an integer: it used to pass the schema and end in a traceback later."""
    with pytest.raises(ConfigError) as caught:
        validate_params(with_change(key, 16.0))
    assert f"{key} = 16.0: must be a whole number" in str(caught.value)


def test_a_whole_number_float_in_a_list_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"attention_scaling.lengths.0 = 256.0: must be a whole"):
        validate_params(with_change("attention_scaling.lengths", [256.0]))


@pytest.mark.parametrize("size", ["models.lstm.block_size", "models.lstm.hidden_size"])
def test_sizes_are_bounded(size):
    params = with_change(size, 1_000_000)
    params["models"]["lstm"]["type"] = "kgram_mlp" if "block" in size else "lstm"
    del params["models"]["lstm"]["embed_size"]
    with pytest.raises(ConfigError, match=rf"{size} = 1000000: must be <= 65536"):
        validate_params(params)


@pytest.mark.parametrize(
    ("key", "value"),
    [("models.lstm\n", {"type": "lstm"}), ("training.device", "cpu\n")],
)
def test_name_patterns_match_the_whole_string(key, value):
    """Python's ``$`` matches before a final newline; the schema's patterns must not."""
    params = copy.deepcopy(GOOD)
    section, name = key.split(".")
    params.setdefault(section, {})[name] = value
    with pytest.raises(ConfigError, match="must match the pattern"):
        validate_params(params)
