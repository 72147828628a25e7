# The attention scaling study: time and memory of each token-mixing op against length.


rule measure_attention_scaling:
    input:
        code=stage_code("attention-scaling"),
    output:
        points="results/attention/scaling.tsv",
    params:
        file=PARAMS_FILE,
        **declared("attention-scaling"),
    log:
        "results/logs/attention/scaling.log",
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "picollm attention-scaling --params {params.file:q} --out {output.points:q} --log-file {log:q}"
