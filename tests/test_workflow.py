"""The source files each stage runs (rule inputs named ``code``), found through its imports."""

from picollm.workflow import stage_code


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
    from picollm.workflow import train_launcher

    models = {"lstm": {"type": "lstm"}, "big": {"type": "lstm", "training": {"processes": 4}}}
    params = validate_params({"models": models})
    assert train_launcher(params, "lstm") == "picollm"
    assert train_launcher(params, "big") == "torchrun --standalone --nproc_per_node 4 -m picollm"
