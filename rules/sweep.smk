# The hyperparameter study: one job per (key, value) in `sweep.values`, around `sweep.model`.


rule sweep:
    input:
        split=SPLIT_OUTPUTS["summary"],
        vocab=SPLIT_OUTPUTS["vocab"],
        train_tokens=SPLIT_OUTPUTS["train_tokens"],
        test_tokens=SPLIT_OUTPUTS["test_tokens"],
        train_docs=SPLIT_OUTPUTS["train_docs"],
        test_docs=SPLIT_OUTPUTS["test_docs"],
        code=stage_code("sweep"),
    output:
        weights="results/sweeps/{model}/{key}/{index}/weights.safetensors",
        vocab="results/sweeps/{model}/{key}/{index}/vocab.json",
        metrics="results/sweeps/{model}/{key}/{index}/metrics.json",
        run="results/sweeps/{model}/{key}/{index}/run.json",
        curve="results/sweeps/{model}/{key}/{index}/curve.tsv",
        steps="results/sweeps/{model}/{key}/{index}/steps.tsv",
    params:
        file=PARAMS_FILE,
        **declared("sweep"),
    log:
        "results/logs/sweep/{model}/{key}/{index}.log",
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "picollm sweep --params {params.file:q} --model {wildcards.model:q}"
        " --key {wildcards.key:q} --index {wildcards.index:q} --split {input.split:q}"
        " --weights {output.weights:q} --metrics {output.metrics:q} --run-json {output.run:q} --curve {output.curve:q}"
        " --steps {output.steps:q} --log-file {log:q}"
