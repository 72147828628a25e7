# Data: generate 3seqs.txt, tokenise every source into one corpus, split it by document.


rule three_seqs:
    input:
        code=code("three-seqs"),
    output:
        text=THREE_SEQS_TEXT,
    log:
        "results/logs/data/three_seqs.log",
    conda:
        CONDA_ENV
    shell:
        "picollm three-seqs --out {output.text:q} --log-file {log:q}"


rule tokenize:
    input:
        sources=corpus_inputs(PARAMS),
        three_seqs=THREE_SEQS_TEXT,  # always: dvc.yaml cannot make a dependency conditional
        params=params_record("tokenize", "tokenize"),
        code=code("tokenize"),
    output:
        corpus=f"{PROCESSED}/corpus.parquet",
        metadata=f"{PROCESSED}/corpus.json",
    params:
        file=PARAMS_FILE,
    log:
        f"{RESULTS}/logs/data/tokenize.log",
    threads: 4  # tokeniser processes; fewer when --cores or the machine allows fewer
    conda:
        CONDA_ENV
    shell:
        "picollm tokenize --params {params.file:q} --out {output.corpus:q}"
        " --metadata {output.metadata:q} --workers {threads} --log-file {log:q}"


rule split:
    input:
        corpus=rules.tokenize.output.corpus,
        metadata=rules.tokenize.output.metadata,  # records the corpus's sha256, checked first
        params=params_record("split", "split"),
        code=code("split"),
    output:
        **SPLIT,
    params:
        file=PARAMS_FILE,
    log:
        f"{RESULTS}/logs/data/split.log",
    conda:
        CONDA_ENV
    shell:
        "picollm split --params {params.file:q} --corpus {input.corpus:q}"
        " --summary {output.summary:q} --log-file {log:q}"
