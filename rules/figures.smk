# Figures (one rule; FIGURES in picollm.stages.figure says what each reads) and the metrics.
# Each reads result files only, so a style change rerenders in seconds.


rule figure:
    input:
        figure_inputs,
        params=params_record("figure", "figure@{name}", name=None),
        code=code("figure"),
    output:
        png=report(
            f"{RESULTS}/figures/{{name}}.png",
            caption="../workflow/report/figure.rst",
            category="Figures",
        ),
        lineage=f"{RESULTS}/figures/{{name}}.json",
    params:
        file=PARAMS_FILE,
        results=lambda wildcards, output: Path(output.png).parent.parent,
        split=SPLIT["summary"],
    log:
        f"{RESULTS}/logs/figures/{{name}}.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure {wildcards.name} --params {params.file:q} --results {params.results:q}"
        " --split {params.split:q} --out {output.png:q} --lineage {output.lineage:q}"
        " --log-file {log:q}"


rule metrics:
    input:
        metrics=expand(f"{RESULTS}/models/{{model}}/metrics.json", model=MODELS),
        params=params_record("metrics", "metrics"),
        code=code("metrics"),
    output:
        summary=f"{RESULTS}/metrics.json",
        table=report(
            f"{RESULTS}/metrics.tsv",
            caption="../workflow/report/metrics.rst",
            category="Metrics",
        ),
    params:
        file=PARAMS_FILE,
        results=lambda wildcards, output: Path(output.summary).parent,
    log:
        f"{RESULTS}/logs/metrics.log",
    conda:
        CONDA_ENV
    shell:
        "picollm metrics --params {params.file:q} --results {params.results:q}"
        " --out {output.summary:q} --table {output.table:q} --log-file {log:q}"
