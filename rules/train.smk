# Training: one job per model under `models` in params.yaml.


rule train:
    input:
        split=SPLIT_OUTPUTS["summary"],
        vocab=SPLIT_OUTPUTS["vocab"],
        train_tokens=SPLIT_OUTPUTS["train_tokens"],
        test_tokens=SPLIT_OUTPUTS["test_tokens"],
        train_docs=SPLIT_OUTPUTS["train_docs"],
        test_docs=SPLIT_OUTPUTS["test_docs"],
        code=stage_code("train"),
    output:
        weights="results/models/{model}/weights.safetensors",
        vocab="results/models/{model}/vocab.json",
        metrics="results/models/{model}/metrics.json",
        run="results/models/{model}/run.json",
        curve="results/models/{model}/curve.tsv",
        steps="results/models/{model}/steps.tsv",
    params:
        file=PARAMS_FILE,
        launch=lambda wildcards: train_launcher(PARAMS, wildcards.model),
        **declared("train"),
    log:
        "results/logs/train/{model}.log",
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "{params.launch} train --params {params.file:q} --model {wildcards.model:q}"
        " --split {input.split:q} --weights {output.weights:q} --metrics {output.metrics:q} --run-json {output.run:q}"
        " --curve {output.curve:q} --steps {output.steps:q}"
        " --log-file {log:q}"
