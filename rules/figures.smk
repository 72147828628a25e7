# Figures: each reads result files only, so a style change rerenders in seconds.


rule overfit_gap:
    input:
        curves=expand("results/models/{model}/curve.tsv", model=MODELS),
        sweep=SWEEP_RUNS,
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/overfit_gap.png",
            caption="../workflow/report/overfit_gap.rst",
            category="Figures",
        ),
        lineage="results/figures/overfit_gap.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/overfit_gap.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure overfit_gap --params {params.file:q} --inputs {input.curves:q}"
        " --sweep {input.sweep:q} --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule loss_curves:
    input:
        curves=expand("results/models/{model}/curve.tsv", model=MODELS),
        split=SPLIT_OUTPUTS["summary"],
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/loss_curves.png",
            caption="../workflow/report/loss_curves.rst",
            category="Figures",
        ),
        lineage="results/figures/loss_curves.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/loss_curves.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure loss_curves --params {params.file:q} --inputs {input.curves:q}"
        " --split {input.split:q} --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule diversity_vs_p:
    input:
        sweeps=expand("results/samples/{model}.json", model=MODELS),
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/diversity_vs_p.png",
            caption="../workflow/report/diversity_vs_p.rst",
            category="Figures",
        ),
        lineage="results/figures/diversity_vs_p.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/diversity_vs_p.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure diversity_vs_p --params {params.file:q} --inputs {input.sweeps:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule hyperparams:
    input:
        sweep=SWEEP_RUNS,
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/hyperparams.png",
            caption="../workflow/report/hyperparams.rst",
            category="Figures",
        ),
        lineage="results/figures/hyperparams.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/hyperparams.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure hyperparams --params {params.file:q} --sweep {input.sweep:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule attention_scaling:
    input:
        points="results/attention/scaling.tsv",
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/attention_scaling.png",
            caption="../workflow/report/attention_scaling.rst",
            category="Figures",
        ),
        lineage="results/figures/attention_scaling.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/attention_scaling.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure attention_scaling --params {params.file:q} --inputs {input.points:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule attention_quality:
    input:
        sweep=ATTENTION_RUNS,
        curves=[path.replace("run.json", "curve.tsv") for path in ATTENTION_RUNS],
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/attention_quality.png",
            caption="../workflow/report/attention_quality.rst",
            category="Figures",
        ),
        lineage="results/figures/attention_quality.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/attention_quality.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure attention_quality --params {params.file:q} --sweep {input.sweep:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule metrics_table:
    input:
        metrics=expand("results/models/{model}/metrics.json", model=MODELS),
        code=stage_code("metrics-table"),
    output:
        table=report(
            "results/metrics.tsv",
            caption="../workflow/report/metrics.rst",
            category="Metrics",
        ),
    params:
        file=PARAMS_FILE,
        **declared("metrics-table"),
    log:
        "results/logs/metrics_table.log",
    conda:
        CONDA_ENV
    shell:
        "picollm metrics-table --params {params.file:q} --inputs {input.metrics:q}"
        " --out {output.table:q} --log-file {log:q}"
