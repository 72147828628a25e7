# The interpretability study of `interpretability.model`: attention maps and SAE features.


rule interpret:
    input:
        weights=rules.train.output.weights,
        run=rules.train.output.run,
        vocab=rules.train.output.vocab,
        split=SPLIT_OUTPUTS["summary"],
        train_tokens=SPLIT_OUTPUTS["train_tokens"],
        train_docs=SPLIT_OUTPUTS["train_docs"],
        code=stage_code("interpret"),
    output:
        attention="results/interpret/{model}/attention.json",
        sae="results/interpret/{model}/sae.safetensors",
        features="results/interpret/{model}/features.json",
        table=report(
            "results/interpret/{model}/features.md",
            caption="../workflow/report/sae_table.rst",
            category="Interpretability",
        ),
    params:
        file=PARAMS_FILE,
        **declared("interpret"),
    log:
        "results/logs/interpret/{model}.log",
    conda:
        CONDA_ENV
    shell:
        "picollm interpret --params {params.file:q} --model {wildcards.model:q}"
        " --weights {input.weights:q} --run-json {input.run:q} --split {input.split:q}"
        " --attention {output.attention:q} --sae {output.sae:q}"
        " --features {output.features:q} --table {output.table:q} --log-file {log:q}"


rule attention_maps:
    input:
        record=interpreted("attention.json"),
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/attention_maps.png",
            caption="../workflow/report/attention_maps.rst",
            category="Figures",
        ),
        lineage="results/figures/attention_maps.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/attention_maps.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure attention_maps --params {params.file:q} --inputs {input.record:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"


rule sae_features:
    input:
        record=interpreted("features.json"),
        code=stage_code("figure"),
    output:
        png=report(
            "results/figures/sae_features.png",
            caption="../workflow/report/sae_features.rst",
            category="Figures",
        ),
        lineage="results/figures/sae_features.json",
    params:
        file=PARAMS_FILE,
        **declared("figure"),
    log:
        "results/logs/figures/sae_features.log",
    conda:
        CONDA_ENV
    shell:
        "picollm figure sae_features --params {params.file:q} --inputs {input.record:q}"
        " --out {output.png:q} --lineage {output.lineage:q} --log-file {log:q}"
