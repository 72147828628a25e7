"""The Snakemake DAG as plain data: one ``Job`` per step the default target needs.

``picollm dvc-yaml`` turns these jobs into DVC stages and ``picollm trace`` walks them back from an
output to raw data; both read the DAG through ``snakemake_jobs`` so they see the same steps.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CODE_INPUT = "code"
"""Rules name the source files a stage runs ``code``; every other input is data."""

ANY_THREADS = 1024
"""Cores to build the DAG with: more than any rule asks for, so ``{threads}`` in a command is the
rule's own ``threads`` whatever machine exports the DAG (``snakemake --cores N`` caps it at N)."""


@dataclass(frozen=True)
class Job:
    """One step of the pipeline: a rule applied to its wildcard values.

    ``input`` and ``output`` are ``(name, path)`` pairs in the rule's order (``name`` is the
    rule's keyword for the file, or ``""``); paths are relative to the Snakefile's directory.
    """

    rule: str
    shellcmd: str
    wildcards: dict[str, str] = field(default_factory=dict)
    input: list[tuple[str, str]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def stage_name(self) -> str:
        """The DVC stage name: the rule name and the wildcard values, joined by ``-``."""
        return "-".join([self.rule, *(str(v) for v in self.wildcards.values())])

    @property
    def input_paths(self) -> list[str]:
        return [path for _, path in self.input]

    @property
    def output_paths(self) -> list[str]:
        return [path for _, path in self.output]

    @property
    def data_inputs(self) -> list[str]:
        """Inputs that are data, not the stage's source code."""
        return [path for name, path in self.input if name != CODE_INPUT]

    @property
    def code_inputs(self) -> list[str]:
        return [path for name, path in self.input if name == CODE_INPUT]

    @property
    def param_keys(self) -> list[str]:
        """The dotted params keys the job declares it reads."""
        return list(self.params.get("param_keys", []))


def snakemake_jobs(snakefile: Path | str) -> list[Job]:
    """Each job of the default target of ``snakefile``, in dependency order."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    snakefile = Path(snakefile).resolve()
    with _quiet(), SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=ANY_THREADS),
            config_settings=ConfigSettings(),
            snakefile=snakefile,
            workdir=snakefile.parent,
        )
        workflow_api.dag(DAGSettings(forceall=True))
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        dag = workflow.dag
        ordered = [job for level in dag.toposorted() for job in sorted(level, key=_job_order)]
        return [_describe(job) for job in ordered if not job.rule.norun]


def _job_order(job: Any) -> tuple[str, list[str]]:
    """Jobs of one DAG level by rule name, then wildcard values (Snakemake's own order of a
    level follows memory addresses, so it can change from one run to the next)."""
    return job.rule.name, [str(value) for value in job.wildcards]


def _describe(job: Any) -> Job:
    return Job(
        rule=job.rule.name,
        shellcmd=" ".join(job.shellcmd.split()),
        wildcards=dict(job.wildcards.items()),
        input=[(name or "", str(f)) for name, f in _named(job.input)],
        output=[(name or "", str(f)) for name, f in _named(job.output)],
        params=dict(job.params.items()),
    )


def _named(files: Any) -> Iterator[tuple[str | None, Any]]:
    """(name, file) for each file of a job's input or output, names from the rule's keywords."""
    names = {}
    for name, (start, end) in files._names.items():
        for index in range(start, end or start + 1):
            names[index] = name
    for index, f in enumerate(files):
        yield names.get(index), f


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Snakemake logs to stdout/stderr while building a DAG; keep the CLI output clean."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
