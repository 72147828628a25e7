# The p sweep: samples from every trained model at each nucleus mass in `sampling.top_p`.


rule sample:
    input:
        weights=rules.train.output.weights,
        run=rules.train.output.run,
        vocab=rules.train.output.vocab,
        code=stage_code("sample-sweep"),
    output:
        samples="results/samples/{model}.jsonl",
        summary="results/samples/{model}.json",
        table=report(
            "results/samples/{model}.tsv",
            caption="../workflow/report/samples.rst",
            category="Samples",
            subcategory="{model}",
        ),
    params:
        file=PARAMS_FILE,
        **declared("sample-sweep"),
    log:
        "results/logs/sample/{model}.log",
    conda:
        CONDA_ENV
    shell:
        "picollm sample-sweep --params {params.file:q} --model {wildcards.model:q}"
        " --weights {input.weights:q} --run-json {input.run:q}"
        " --samples {output.samples:q} --summary {output.summary:q} --table {output.table:q}"
        " --log-file {log:q}"
