# picollm: the pipeline's DAG. Rules only wire files, params and logs; every rule runs one
# `picollm <stage>` command, which does the work. `picollm dvc-yaml` derives dvc.yaml from here.

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"  # validated by rules/common.smk: the project's checks, one line each


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/sweep.smk"
include: "rules/sample.smk"
include: "rules/attention.smk"
include: "rules/interpret.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        FIGURES,
        "results/metrics.tsv",
