# The attention scaling study: time and memory of each token-mixing op against length.


rule attention_scaling:
    input:
        params=params_record("attention-scaling", "attention_scaling"),
        code=code("attention-scaling"),
    output:
        points=f"{RESULTS}/attention/scaling.tsv",
    params:
        file=PARAMS_FILE,
    log:
        f"{RESULTS}/logs/attention/scaling.log",
    threads: 2
    conda:
        CONDA_ENV
    shell:
        "picollm attention-scaling --params {params.file:q} --out {output.points:q} --log-file {log:q}"
