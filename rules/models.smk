# Training and what reads trained models: one job per model under `models`, one per study of
# `sweep.values` and seed of `sweep.seeds` (every point of the study in turn), the p sweep, the
# interpretability study.

RUN_FILES = ("weights.safetensors", "vocab.json", "metrics.json", "run.json", "curve.tsv", "steps.tsv")


rule train:
    input:
        **TRAIN_DATA,
        params=params_record("train", "train@{model}", model=None),
        code=code("train"),
    output:
        **{name.split(".")[0]: f"{RESULTS}/models/{{model}}/{name}" for name in RUN_FILES},
    params:
        file=PARAMS_FILE,
        launch=lambda wildcards: train_launcher(PARAMS, wildcards.model),
    log:
        f"{RESULTS}/logs/train/{{model}}.log",
    threads: 1  # per training process
    resources:  # a cluster job holds every process's threads
        cpus_per_task=lambda wildcards, threads: threads * train_processes(PARAMS, wildcards.model),
    conda:
        CONDA_ENV
    shell:
        "{params.launch} train --params {params.file:q} --model {wildcards.model:q}"
        " --split {input.summary:q} --weights {output.weights:q} --metrics {output.metrics:q}"
        " --run-json {output.run:q} --curve {output.curve:q} --steps {output.steps:q}"
        " --log-file {log:q}"


rule sweep:
    input:
        **TRAIN_DATA,
        params=params_record("sweep", "sweep@{key}", model=SWEEP["model"], key=None),
        code=code("sweep"),
    output:
        runs=directory(f"{RESULTS}/sweeps/{SWEEP['model']}/{{key}}/{{seed}}"),  # <index>/ per point
    params:
        file=PARAMS_FILE,
        model=SWEEP["model"],
    log:
        f"{RESULTS}/logs/sweep/{SWEEP['model']}/{{key}}/{{seed}}.log",
    threads: 1
    conda:
        CONDA_ENV
    shell:
        "picollm sweep --params {params.file:q} --model {params.model:q} --key {wildcards.key:q}"
        " --seed {wildcards.seed:q} --split {input.summary:q} --out {output.runs:q} --log-file {log:q}"


rule sample:
    input:
        weights=rules.train.output.weights,
        run=rules.train.output.run,
        model_vocab=rules.train.output.vocab,
        **TRAIN_DATA,  # copy rates compare the samples with the train and test text
        params=params_record("sample-sweep", "sample@{model}", model=None),
        code=code("sample-sweep"),
    output:
        samples=f"{RESULTS}/samples/{{model}}.jsonl",
        summary=f"{RESULTS}/samples/{{model}}.json",
        table=report(
            f"{RESULTS}/samples/{{model}}.tsv",
            caption="../workflow/report/samples.rst",
            category="Samples",
            subcategory="{model}",
        ),
    params:
        file=PARAMS_FILE,
    log:
        f"{RESULTS}/logs/sample/{{model}}.log",
    conda:
        CONDA_ENV
    shell:
        "picollm sample-sweep --params {params.file:q} --model {wildcards.model:q}"
        " --weights {input.weights:q} --run-json {input.run:q} --split {input.summary:q}"
        " --samples {output.samples:q} --summary {output.summary:q} --table {output.table:q}"
        " --log-file {log:q}"


if INTERPRETED is not None:  # the study of `interpretability.model`

    rule interpret:
        input:
            weights=f"{RESULTS}/models/{INTERPRETED}/weights.safetensors",
            run=f"{RESULTS}/models/{INTERPRETED}/run.json",
            vocab=f"{RESULTS}/models/{INTERPRETED}/vocab.json",
            split=SPLIT["summary"],
            train_tokens=SPLIT["train_tokens"],
            train_docs=SPLIT["train_docs"],
            params=params_record("interpret", "interpret"),
            code=code("interpret"),
        output:
            attention=f"{RESULTS}/interpret/{INTERPRETED}/attention.json",
            sae=f"{RESULTS}/interpret/{INTERPRETED}/sae.safetensors",
            features=f"{RESULTS}/interpret/{INTERPRETED}/features.json",
            table=report(
                f"{RESULTS}/interpret/{INTERPRETED}/features.md",
                caption="../workflow/report/sae_table.rst",
                category="Interpretability",
            ),
        params:
            file=PARAMS_FILE,
            model=INTERPRETED,
        log:
            f"{RESULTS}/logs/interpret/{INTERPRETED}.log",
        conda:
            CONDA_ENV
        shell:
            "picollm interpret --params {params.file:q} --model {params.model:q}"
            " --weights {input.weights:q} --run-json {input.run:q} --split {input.split:q}"
            " --attention {output.attention:q} --sae {output.sae:q}"
            " --features {output.features:q} --table {output.table:q} --log-file {log:q}"
