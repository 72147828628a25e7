# picollm: the pipeline's DAG. Rules only wire files, params and logs; every rule runs one
# `picollm <stage>` command, which does the work. dvc.yaml lists the same stages for DVC.

from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"  # first: refuses --config, reads and checks the params file


report: "workflow/report/workflow.rst"


wildcard_constraints:
    model="|".join(re.escape(model) for model in MODELS),
    key="|".join(re.escape(key) for key in SWEEP["values"]) or "(?!)",
    name="|".join(FIGURES),
    seed=r"\d+",


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/studies.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        [figure_output(name) for name in default_figures(PARAMS)],
        f"{RESULTS}/metrics.json",
