# Figures: each reads result files only, so a style change rerenders in seconds.


rule overfit_gap:
    input:
        curves=expand("results/models/{model}/curve.tsv", model=MODELS),
        code=stage_code("figure"),
    output:
        png="results/figures/overfit_gap.png",
        lineage="results/figures/overfit_gap.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/overfit_gap.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure overfit_gap --params {params.file:q} --curves {input.curves:q}"
        " --out {output.png:q}"
        " --log {log:q}"
