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
        "picollm figure overfit_gap --params {params.file:q} --inputs {input.curves:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log {log:q}"


rule diversity_vs_p:
    input:
        sweeps=expand("results/samples/{model}.json", model=MODELS),
        code=stage_code("figure"),
    output:
        png="results/figures/diversity_vs_p.png",
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
        " --out {output.png:q} --lineage {output.lineage:q} --log {log:q}"
