"""The source files each stage runs (rule inputs named ``code``), found through its imports."""

from picollm.pipeline.workflow import stage_code


def files(stage: str) -> set[str]:
    return {path.removeprefix("src/picollm/") for path in stage_code(stage)}


def test_names_imported_from_a_lazy_package_reach_the_submodule_defining_them():
    train = files("train")  # `from picollm.training import train, ...` (PEP 562 exports)
    assert {"training/trainer.py", "training/checkpoint.py", "training/history.py"} <= train
    sample = files("sample-sweep")  # `from picollm.training import load_trained_model`
    assert {"training/weights.py", "training/checkpoint.py", "models/transformer.py"} <= sample
    assert "training/trainer.py" not in sample


def test_a_stage_depends_only_on_what_it_imports():
    tokenize = files("tokenize")
    assert {"stages/tokenize.py", "data/tokenize.py", "data/corpus.py", "tokenizer.py"} <= tokenize
    assert not {path for path in tokenize if path.startswith(("models/", "training/"))}
    assert not {path for path in files("figure") if path.startswith(("models/", "data/"))}


def test_the_train_rule_launches_torchrun_for_a_model_asking_for_processes():
    from picollm.config import validate_params
    from picollm.pipeline.workflow import train_launcher

    models = {"lstm": {"type": "lstm"}, "big": {"type": "lstm", "training": {"processes": 4}}}
    params = validate_params({"models": models})
    assert train_launcher(params, "lstm") == "picollm"
    assert train_launcher(params, "big") == "torchrun --standalone --nproc_per_node 4 -m picollm"


def test_every_input_path_in_params_must_exist(tmp_path):
    import copy

    import pytest

    from picollm.config import ConfigError, validate_params
    from picollm.pipeline.workflow import THREE_SEQS_TEXT, check_inputs_exist

    (tmp_path / "here.txt").write_text("a story\n")
    params = validate_params({"models": {"lstm": {"type": "lstm"}}})
    params["data"]["input_files"] = ["here.txt", THREE_SEQS_TEXT]  # the pipeline makes 3seqs
    check_inputs_exist(params, tmp_path)
    missing = copy.deepcopy(params)
    missing["data"]["input_files"].append("gone.txt")
    missing["data"]["tinystories_weight"] = 1.0
    missing["data"]["tinystories"]["path"] = "stories/"
    with pytest.raises(ConfigError) as caught:
        check_inputs_exist(missing, tmp_path)
    message = str(caught.value)
    assert "data.input_files[2] = 'gone.txt': no such file" in message
    assert "data.tinystories.path = 'stories/': no such file" in message
    missing["data"]["tinystories"]["source"] = "hub"  # a path the hub mode never reads
    missing["data"]["input_files"].pop()
    check_inputs_exist(missing, tmp_path)


def test_picollm_validate_names_a_missing_input(tmp_path, monkeypatch, capsys):
    import yaml

    from picollm.cli import main

    monkeypatch.chdir(tmp_path)
    params = {"data": {"input_files": ["nowhere.txt"]}, "models": {"lstm": {"type": "lstm"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["validate"]) == 2
    assert "data.input_files[0] = 'nowhere.txt': no such file" in capsys.readouterr().err
    (tmp_path / "nowhere.txt").write_text("now here\n")
    assert main(["validate"]) == 0
