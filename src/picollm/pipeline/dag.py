"""The Snakemake DAG as plain data: one ``Job`` per step the default target needs.

Read from Snakemake's own command line (``snakemake --dry-run --forceall --printshellcmds``), no
private API: each job block names the rule, its input, output and wildcards, then its shell
command. ``picollm trace`` walks these jobs back from an output to raw data, and the tests compare
them with ``dvc.yaml``'s stages (a job's ``stage_name`` is its DVC stage's name).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picollm.errors import UserError

CODE_INPUT = "code"
"""Inputs that are the source files a stage runs; every other input is data."""
PARAMS_INPUT = "params"
"""Inputs that are a job's params record (Snakemake's rerun trigger for params), not data."""
PARAMS_RECORDS = ".picollm/params/"
ANY_THREADS = 1024
"""Cores to plan with: more than any rule asks for, so ``{threads}`` in a command is the rule's
own ``threads`` whatever machine reads the DAG (``snakemake --cores N`` caps it at N)."""


@dataclass(frozen=True)
class Job:
    """One step of the pipeline: a rule applied to its wildcard values.

    ``input`` and ``output`` are ``(kind, path)`` pairs in the rule's order (``kind`` is
    ``CODE_INPUT``, ``PARAMS_INPUT`` or ``""`` for data); paths are relative to the workflow's
    directory.
    """

    rule: str
    shellcmd: str
    wildcards: dict[str, str] = field(default_factory=dict)
    input: list[tuple[str, str]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def stage_name(self) -> str:
        """The DVC stage name: the rule, then ``@`` and the wildcard values joined by ``-``."""
        values = "-".join(str(v) for v in self.wildcards.values())
        return f"{self.rule}@{values}" if values else self.rule

    @property
    def input_paths(self) -> list[str]:
        return [path for _, path in self.input]

    @property
    def output_paths(self) -> list[str]:
        return [path for _, path in self.output]

    @property
    def data_inputs(self) -> list[str]:
        """Inputs that are data, not the stage's source code or params record."""
        return [path for kind, path in self.input if kind not in (CODE_INPUT, PARAMS_INPUT)]

    @property
    def code_inputs(self) -> list[str]:
        return [path for kind, path in self.input if kind == CODE_INPUT]

    @property
    def param_keys(self) -> list[str]:
        """The dotted params keys the job declares it reads."""
        return list(self.params.get("param_keys", []))


def snakemake_jobs(snakefile: Path | str, params_file: str | None = None) -> list[Job]:
    """Each job of the default target of ``snakefile``, in the order Snakemake plans them.

    ``params_file`` other than ``params.yaml`` is passed as ``--configfile``."""
    snakefile = Path(snakefile).resolve()
    command = [
        *_snakemake(),
        "--snakefile", str(snakefile),
        "--dry-run", "--forceall", "--printshellcmds", "--nocolor",
        "--cores", str(ANY_THREADS),
    ]  # fmt: skip
    if params_file is not None and Path(params_file).name != "params.yaml":
        command += ["--configfile", str(Path(params_file).resolve())]
    done = subprocess.run(
        command, cwd=snakefile.parent, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise UserError(f"snakemake cannot plan the pipeline:\n{done.stdout}{done.stderr}".strip())
    return parse_dry_run(done.stdout)


def _snakemake() -> list[str]:
    """The ``snakemake`` of this Python environment (its console script, else the module)."""
    script = Path(sys.executable).with_name("snakemake")
    return [str(script)] if script.exists() else [sys.executable, "-m", "snakemake"]


_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")
_SHELL = "Shell command: "


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of ``snakemake --dry-run --printshellcmds`` output (rules without a shell
    command, such as ``all``, left out)."""
    jobs = []
    rule: str | None = None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if match := _RULE.match(line):
            rule, fields = match.group(1), {}
        elif rule is not None and (match := _FIELD.match(line)):
            fields[match.group(1)] = match.group(2)
        elif rule is not None and line.startswith(_SHELL):
            command = " ".join(line[len(_SHELL) :].split())
            if command != "None":
                jobs.append(_job(rule, fields, command))
            rule = None
    return jobs


def _job(rule: str, fields: dict[str, str], command: str) -> Job:
    from picollm.stages import STAGES

    wildcards = dict(item.split("=", 1) for item in _split(fields.get("wildcards", "")))
    stage = _stage_of(command)
    options = _options(command)
    keys = []
    if stage in STAGES:
        values = {name: options.get(f"--{name}", "") for name in STAGES[stage].wildcards}
        keys = STAGES[stage].keys(**values)
    return Job(
        rule=rule,
        shellcmd=command,
        wildcards=wildcards,
        input=[(_kind(path), path) for path in _split(fields.get("input", ""))],
        output=[("", path) for path in _split(fields.get("output", ""))],
        params={"param_keys": keys},
    )


def _split(value: str) -> list[str]:
    return [part for part in value.split(", ") if part]


def _kind(path: str) -> str:
    if path.startswith(PARAMS_RECORDS):
        return PARAMS_INPUT
    if path.startswith("src/picollm/") or os.path.isabs(path) and "/picollm/" in path:
        return CODE_INPUT
    return ""


def _stage_of(command: str) -> str:
    """The ``picollm`` subcommand a shell command runs (after ``picollm`` or ``-m picollm``)."""
    words = shlex.split(command)
    for index, word in enumerate(words[:-1]):
        if word == "picollm" or word.endswith("/picollm"):
            return words[index + 1]
    return ""


def _options(command: str) -> dict[str, str]:
    words = shlex.split(command)
    return {word: value for word, value in zip(words, words[1:], strict=False) if word[:2] == "--"}
