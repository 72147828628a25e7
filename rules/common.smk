# Helpers shared by the rules: the validated params, and per-stage params/code lookups.

from picollm.config import ConfigError, validate_params
from picollm.workflow import corpus_inputs, split_outputs, stage_code, stage_keys, stage_params

if workflow.config_settings.config:
    raise WorkflowError(
        "--config overrides are not seen by the picollm stages, which read the params file: "
        "edit params.yaml or pass another file with --configfile"
    )
PARAMS_FILE = str((workflow.overwrite_configfiles or ["params.yaml"])[-1])
try:
    PARAMS = validate_params(config, source=PARAMS_FILE)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
MODELS = sorted(PARAMS["models"])
CONDA_ENV = "../workflow/envs/picollm.yaml"
SPLIT_OUTPUTS = split_outputs("data/processed/split")


def declared(stage):
    """The params a stage reads: its dotted keys and their values (both rerun triggers)."""
    return {"param_keys": stage_keys(stage), "param_values": stage_params(stage, PARAMS)}


wildcard_constraints:
    model="|".join(MODELS),
