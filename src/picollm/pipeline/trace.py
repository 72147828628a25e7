"""``picollm trace``: the lineage of any output, step by step back to raw data.

The job that makes the output is found in the Snakemake DAG, then the jobs that make its data
inputs, and so on back to files no job makes (raw data). Source files a stage runs are its code:
summarised by one hash, never walked as data. Each step is checked against two stored records:

- the lineage record the stage wrote beside its outputs (``picollm.pipeline.lineage.record``: a figure's
  ``.json`` sidecar, or the ``lineage`` entry of a JSON output such as ``metrics.json``), whose
  input hashes and params must match the files and params as they are now;
- the step's stage in ``dvc.lock``, whose command, file md5s and params must match likewise;
- the hashes a data record states for the files beside it (``corpus.json``, ``split.json``:
  ``picollm.integrity``), which must match those files as they are now.

A trace is ``ok`` when every output exists and nothing is stale or disagrees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picollm.config import ConfigError, load_params, lookup, prune, read_yaml
from picollm.data.corpus import describe_tinystories
from picollm.errors import UserError
from picollm.integrity import rebuild_command, recorded_hashes
from picollm.pipeline.dag import Job, snakemake_jobs
from picollm.pipeline.lineage import code_version

DVC_LOCK = "dvc.lock"
DVC_PARAMS_FILE = "params.yaml"
"""The params file DVC reads the keys of a stage's ``params`` list from, by default."""
DIRECTORY = "directory"
"""Stands for the digest of a path that is a directory: only files are hashed."""
SHORT_HASH = 12
"""Hex digits of a hash shown in the text report (``--json`` has them whole)."""

Hashes = dict[str, str | None]
"""``{path: hex digest}``; ``None`` for a file that does not exist."""


class UnknownOutputError(UserError, ValueError):
    """The path asked about is made by no job of the pipeline."""


@dataclass(frozen=True)
class Check:
    """One stored record compared with the files and params as they are now."""

    source: str
    """Where the record is: an output holding a lineage record, or ``dvc.lock``."""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One job of the chain, with what it read and wrote as it is now, and its checks."""

    rule: str
    wildcards: dict[str, str]
    stage: str
    command: str
    params: dict[str, Any]
    code: dict[str, Any]
    """``sha256`` over the source files, the package's ``version`` (git commit), the ``files``."""
    inputs: Hashes
    outputs: Hashes
    lineage: list[Check]
    dvc: Check | None
    """``None`` when there is no ``dvc.lock`` to compare with."""
    data: list[str] = field(default_factory=list)
    """What its records say of the data it made: the TinyStories source, the vocabulary."""

    @property
    def problems(self) -> list[str]:
        """Outputs and source files that are missing, then each check's problems."""
        checks = [*self.lineage, *([self.dvc] if self.dvc else [])]
        return [
            *(f"missing: {path} not built" for path in _missing(self.outputs)),
            *(f"missing: source file {path}" for path in _missing(self.code["files"])),
            *(f"{check.source}: {problem}" for check in checks for problem in check.problems),
        ]


@dataclass(frozen=True)
class Trace:
    """The chain of steps that makes ``target``, from raw data to the target."""

    target: str
    raw_inputs: Hashes
    steps: list[Step]
    dvc_lock: bool
    """Whether a ``dvc.lock`` was there to compare with."""

    @property
    def problems(self) -> list[str]:
        """Every problem of the trace, each naming its step."""
        missing = [f"missing: raw input {path}" for path in _missing(self.raw_inputs)]
        return missing + [f"{s.stage}: {problem}" for s in self.steps for problem in s.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, **dataclasses.asdict(self)}


def _missing(hashes: Hashes) -> list[str]:
    return [path for path, digest in hashes.items() if digest is None]


class FileDigests:
    """Hex digests of files by path relative to ``root``, each file read once per algorithm."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[tuple[str, str], str | None] = {}

    def __call__(self, path: str, algorithm: str = "sha256") -> str | None:
        """The digest of the file, ``DIRECTORY`` for a directory, ``None`` if there is none."""
        key = (path, algorithm)
        if key not in self._known:
            self._known[key] = self._digest(self.root / path, algorithm)
        return self._known[key]

    def many(self, paths: Iterable[str]) -> Hashes:
        return {path: self(path) for path in paths}

    @staticmethod
    def _digest(file: Path, algorithm: str) -> str | None:
        if file.is_dir():
            return DIRECTORY
        if not file.is_file():
            return None
        with open(file, "rb") as handle:
            return hashlib.file_digest(handle, algorithm).hexdigest()


# -- walking the DAG ------------------------------------------------------------------------


def chain(jobs: Sequence[Job], target: str) -> list[Job]:
    """The jobs that make ``target``, each after the jobs that make its data inputs, ending with
    the job that writes ``target``. Raw data (files no job makes) and code end the walk."""
    makers = {os.path.normpath(path): job for job in jobs for path in job.output_paths}
    target = os.path.normpath(target)
    if _maker(makers, target) is None:
        known = sorted(makers)
        listing = ", ".join(known[:6]) + (f", ... ({len(known)} in all)" if len(known) > 6 else "")
        raise UnknownOutputError(f"no job of the pipeline makes {target}; it makes {listing}")
    ordered: list[Job] = []
    visited: set[str] = set()

    def visit(job: Job) -> None:
        if job.stage_name in visited:
            return
        visited.add(job.stage_name)
        for path in job.data_inputs:
            maker = _maker(makers, os.path.normpath(path))
            if maker is not None:
                visit(maker)
        ordered.append(job)

    visit(_maker(makers, target))
    return ordered


def _maker(makers: Mapping[str, Job], path: str) -> Job | None:
    """The job whose output is ``path`` or a folder holding it (a sweep key's runs)."""
    while path not in makers:
        parent = os.path.dirname(path)
        if parent == path or not parent:
            return None
        path = parent
    return makers[path]


def raw_inputs(steps: Sequence[Job]) -> list[str]:
    """Data inputs of ``steps`` that none of them makes, in order of first use."""
    made = {os.path.normpath(path): job for job in steps for path in job.output_paths}
    found: dict[str, None] = {}
    for job in steps:
        for path in job.data_inputs:
            if _maker(made, os.path.normpath(path)) is None:
                found.setdefault(path)
    return list(found)


# -- comparing with stored records ---------------------------------------------------------


def json_outputs(outputs: Iterable[str], root: Path) -> list[tuple[str, Any]]:
    """``(path, data)`` for each existing ``.json`` output: its parsed content, or ``None`` if
    the file is not JSON."""
    found = []
    for path in outputs:
        file = root / path
        if file.suffix != ".json" or not file.is_file():
            continue
        try:
            found.append((path, json.loads(file.read_text(encoding="utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError):
            found.append((path, None))
    return found


def lineage_records(outputs: Iterable[str], root: Path) -> list[tuple[str, Any]]:
    """``(path, record)`` for each JSON output holding a lineage record: the whole file (a
    figure's sidecar) or its ``lineage`` entry. A record is ``None`` if the file is not JSON."""
    found = []
    for path, data in json_outputs(outputs, root):
        if data is None:
            found.append((path, None))
            continue
        record = data.get("lineage", data) if isinstance(data, dict) else None
        if isinstance(record, dict) and {"inputs", "params"} <= record.keys():
            found.append((path, record))
    return found


def check_lineage(
    source: str, record: Any, params: Mapping[str, Any], digests: FileDigests
) -> Check:
    """Compare a lineage record's input hashes and params with the files and ``params`` (the
    stage's subset) now."""
    if record is None:
        return Check(source, problems=["not valid JSON: cannot read its lineage"])
    problems = []
    for path, built_from in record["inputs"].items():
        now = digests(path)
        if now is None:
            problems.append(f"stale: input {path} is gone since it was built")
        elif now != built_from:
            problems.append(f"stale: input {path} changed since it was built")
    for key, then, now in param_differences(record["params"], params):
        problems.append(f"stale: param {key} changed since it was built ({then} -> {now})")
    code = record.get("code") or {}
    notes = [f"built by {describe_code_version(code)}"] if code else []
    return Check(source, problems=problems, notes=notes)


def check_recorded_files(outputs: Iterable[str], digests: FileDigests) -> list[Check]:
    """For each JSON output that records the sha256 of files beside it, those files now: one
    that differs is damaged or was replaced (a missing one is reported as not built)."""
    checks = []
    for path in outputs:
        file = digests.root / path
        if file.suffix != ".json" or not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # lineage_records reports it
        recorded = recorded_hashes(data) if isinstance(data, dict) else {}
        if not recorded:
            continue
        folder = os.path.dirname(path)
        problems = [
            f"damaged: {name} differs from the sha256 recorded here; rebuild it: "
            f"{rebuild_command(path)}"
            for name, digest in recorded.items()
            if digests(os.path.join(folder, name)) not in (None, digest)
        ]
        checks.append(Check(path, problems=problems))
    return checks


def check_dvc_lock(job: Job, lock: Mapping[str, Any], digests: FileDigests) -> Check:
    """Compare the job's stage in ``dvc.lock`` (command, md5 of every file, params values) with
    the job and the files as they are now. Directories (``.dir`` md5s) are not compared."""
    stage = (lock.get("stages") or {}).get(job.stage_name)
    if stage is None:
        return Check(DVC_LOCK, problems=[f"no stage {job.stage_name}"])
    problems, notes = [], []
    if stage.get("cmd") != job.shellcmd:
        problems.append(f"the command differs; it ran: {stage.get('cmd')}")
    entries = [*(stage.get("deps") or []), *(stage.get("outs") or [])]
    for entry in entries:
        path, md5 = entry["path"], entry.get("md5")
        if md5 is None:
            notes.append(f"records no md5 for {path}: not compared")
        elif md5.endswith(".dir"):
            notes.append(f"{path} is a directory: not compared (only files are)")
        elif (now := digests(path, "md5")) is None:
            problems.append(f"{path} is missing")
        elif now != md5:
            problems.append(
                f"{path} changed (md5 {md5[:SHORT_HASH]} in the lock, {now[:SHORT_HASH]} now)"
            )
    listed = {os.path.normpath(entry["path"]) for entry in entries}
    used = {
        os.path.normpath(path) for path in [*job.code_inputs, *job.data_inputs, *job.output_paths]
    }
    problems += [f"does not list {path}" for path in sorted(used) if not _covered(path, listed)]
    unused = {path for path in listed if not any(_covered(u, {path}) for u in used)}
    problems += [f"lists {path}, which the job no longer uses" for path in sorted(unused)]
    problems += _dvc_param_problems(job, stage.get("params") or {}, digests.root)
    return Check(DVC_LOCK, problems=problems, notes=notes)


def _covered(path: str, listed: set[str]) -> bool:
    """Whether ``path`` or a folder holding it is in ``listed`` (DVC lists code and sweep runs
    by folder, Snakemake by file)."""
    parts = Path(path).parts
    return any(os.path.join(*parts[:n]) in listed for n in range(len(parts), 0, -1))


def _dvc_param_problems(job: Job, locked: Mapping[str, Any], root: Path) -> list[str]:
    """Params values in the lock that differ from the params files now, and declared keys
    the lock lacks. DVC reads the files as written, without schema defaults, and so does this."""
    needed = {*locked, *([DVC_PARAMS_FILE] if job.param_keys else [])}
    files = {name: read_yaml(root / name) or {} for name in needed}
    recorded = locked.get(DVC_PARAMS_FILE) or {}
    problems = [
        f"does not record param {key}"
        for key in job.param_keys
        if key not in recorded and _has_key(files[DVC_PARAMS_FILE], key)
    ]
    for name, values in locked.items():
        for key, then in (values or {}).items():
            now = lookup(files[name], key) if _has_key(files[name], key) else _ABSENT
            for sub, old, new in param_differences({key: then}, {key: now}):
                problems.append(f"param {sub} is {old} in the lock, {new} in {name}")
    return problems


def _has_key(tree: Mapping[str, Any], dotted: str) -> bool:
    try:
        lookup(tree, dotted)
    except ConfigError:
        return False
    return True


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def param_differences(then: Any, now: Any, key: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, value then, value now)`` for each leaf where two params trees differ,
    values as ``repr`` (``absent`` where a tree lacks the key)."""
    if isinstance(then, Mapping) and isinstance(now, Mapping):
        differences = []
        for name in {**then, **now}:
            sub = f"{key}.{name}" if key else str(name)
            differences += param_differences(then.get(name, _ABSENT), now.get(name, _ABSENT), sub)
        return differences
    return [] if then == now else [(key, repr(then), repr(now))]


# -- the trace ------------------------------------------------------------------------------


def trace(
    target: str,
    jobs: Sequence[Job],
    params: Mapping[str, Any],
    root: Path,
    lock: Mapping[str, Any] | None = None,
) -> Trace:
    """The lineage of ``target`` (a path relative to ``root``, the pipeline's directory).

    ``jobs`` is the pipeline (``picollm.pipeline.dag.snakemake_jobs``), ``params`` the validated params
    with defaults (``load_params``), ``lock`` the parsed ``dvc.lock`` if there is one.
    """
    digests = FileDigests(root)
    steps = chain(jobs, target)
    return Trace(
        target=os.path.normpath(target),
        raw_inputs=digests.many(raw_inputs(steps)),
        steps=[_step(job, params, digests, lock) for job in steps],
        dvc_lock=lock is not None,
    )


def _step(
    job: Job, params: Mapping[str, Any], digests: FileDigests, lock: Mapping[str, Any] | None
) -> Step:
    subset = prune(params, job.param_keys)
    code_files = digests.many(sorted(job.code_inputs))
    records = lineage_records(job.output_paths, digests.root)
    return Step(
        rule=job.rule,
        wildcards=dict(job.wildcards),
        stage=job.stage_name,
        command=job.shellcmd,
        params=subset,
        code={"sha256": code_hash(code_files), "version": code_version(), "files": code_files},
        inputs=digests.many(job.data_inputs),
        outputs=digests.many(job.output_paths),
        lineage=[
            *(check_lineage(path, record, subset, digests) for path, record in records),
            *check_recorded_files(job.output_paths, digests),
        ],
        dvc=None if lock is None else check_dvc_lock(job, lock, digests),
        data=data_notes(job.output_paths, digests.root),
    )


def data_notes(outputs: Iterable[str], root: Path) -> list[str]:
    """What the JSON records among ``outputs`` say of the data: where a corpus's TinyStories
    came from (corpus.json: Hub, local files, the shipped excerpt or the story grammar) and a
    split's vocabulary with its unknown-token shares (split.json)."""
    notes = []
    for _, record in json_outputs(outputs, root):
        if not isinstance(record, dict):
            continue
        if record.get("tinystories_source"):
            notes.append(describe_tinystories(record))
        vocab, splits = record.get("vocab"), record.get("splits")
        if isinstance(vocab, dict) and isinstance(splits, dict) and "name" in vocab:
            shares = ", ".join(
                f"{name} {split['unknown_token_share']:.1%}"
                for name, split in splits.items()
                if isinstance(split, dict) and "unknown_token_share" in split
            )
            notes.append(f"vocabulary {vocab['name']}; unknown tokens: {shares or 'not recorded'}")
    return notes


def code_hash(files: Hashes) -> str | None:
    """One sha256 for a set of source files: of the lines ``<sha256>  <path>`` that
    ``sha256sum`` prints for them, in the order given; ``None`` if one is missing."""
    if any(digest is None for digest in files.values()):
        return None
    listing = "".join(f"{digest}  {path}\n" for path, digest in files.items())
    return hashlib.sha256(listing.encode()).hexdigest()


def describe_code_version(version: Mapping[str, Any]) -> str:
    """``picollm 0.1.0 at git f882eba3 (dirty)`` from ``picollm.pipeline.lineage.code_version()``."""
    text = f"{version.get('package', 'picollm')} {version.get('version', '?')}"
    if "git_commit" in version:
        dirty = " (dirty)" if version.get("git_dirty") else ""
        text += f" at git {version['git_commit'][:8]}{dirty}"
    return text


# -- the report -----------------------------------------------------------------------------


def render(result: Trace) -> str:
    """The trace as text for a person: a header, one block per step, a verdict."""
    lines = [f"trace of {result.target}: {len(result.steps)} step(s) from raw data"]
    if result.raw_inputs:
        lines += ["", "raw data (made by no step):", *_files(result.raw_inputs, indent="  ")]
    else:
        lines.append("raw data: none; every data input is made by a step")
    if not result.dvc_lock:
        lines.append("dvc.lock: none here, so DVC agreement is not checked")
    for number, step in enumerate(result.steps, start=1):
        lines += ["", *_render_step(step, f"[{number}/{len(result.steps)}]")]
    problems = result.problems
    lines.append("")
    if problems:
        lines += [f"{len(problems)} problem(s):", *(f"  {problem}" for problem in problems)]
    else:
        lines.append("everything agrees")
    return "\n".join(lines)


def _render_step(step: Step, number: str) -> list[str]:
    wildcards = ", ".join(f"{k}={v}" for k, v in step.wildcards.items())
    code = step.code
    code_digest = _short(code["sha256"]) if code["sha256"] else "incomplete: a file is missing"
    lines = [
        f"{number} {step.rule}" + (f" ({wildcards})" if wildcards else ""),
        f"  command  {step.command}",
        *_labelled("params", [f"{k} = {v!r}" for k, v in _leaves(step.params)] or ["(none)"]),
        f"  code     {len(code['files'])} file(s), sha256 {code_digest}; "
        f"{describe_code_version(code['version'])}",
        *_labelled("inputs", _files(step.inputs) or ["(none)"]),
        *_labelled("outputs", _files(step.outputs)),
    ]
    lineage = [line for c in step.lineage for line in _check_lines(c, f"{c.source}: agrees")]
    lines += _labelled("data", step.data) if step.data else []
    lines += _labelled("lineage", lineage or ["no record among the outputs"])
    if step.dvc is not None:
        lines += _labelled("dvc", _check_lines(step.dvc, "agrees with dvc.lock"))
    return lines


def _check_lines(check: Check, agrees: str) -> list[str]:
    """A check's verdict (the line ``agrees``, or its problems) and then its notes."""
    if not check.problems:
        return [agrees, *check.notes]
    problems = [f"  {problem}" for problem in check.problems]
    return [f"{check.source}: {len(check.problems)} problem(s)", *problems, *check.notes]


def _labelled(label: str, lines: list[str]) -> list[str]:
    """``label`` before the first line, the rest aligned under it."""
    return [f"  {label if i == 0 else '':<8} {line}" for i, line in enumerate(lines)]


def _files(hashes: Hashes, indent: str = "") -> list[str]:
    width = max((len(path) for path in hashes), default=0)
    return [
        f"{indent}{path:<{width}}  {_describe_digest(digest)}" for path, digest in hashes.items()
    ]


def _describe_digest(digest: str | None) -> str:
    if digest is None:
        return "missing: not built"
    if digest == DIRECTORY:
        return "directory: not hashed"
    return f"sha256 {_short(digest)}"


def _short(digest: str) -> str:
    return digest[:SHORT_HASH]


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for each leaf of a params tree."""
    leaves = []
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else key
        leaves += (
            _leaves(value, dotted) if isinstance(value, Mapping) and value else [(dotted, value)]
        )
    return leaves


# -- the command ----------------------------------------------------------------------------


def run(output: str, snakefile: str, params_file: str, as_json: bool) -> int:
    """Print the trace of ``output`` (a path relative to the working directory); exit status 0
    when everything agrees, 1 when something is missing, stale or disagrees."""
    root = Path(snakefile).resolve().parent
    target = _relative_to(root, output)
    params = load_params(params_file)
    lock_file = root / DVC_LOCK
    lock = (read_yaml(lock_file) or {}) if lock_file.is_file() else None
    result = trace(target, snakemake_jobs(snakefile, params_file), params, root, lock)
    print(json.dumps(result.to_dict(), indent=2) if as_json else render(result))
    return 0 if result.ok else 1


def _relative_to(root: Path, path: str) -> str:
    """``path`` relative to ``root`` when it lies under it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, root)
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return absolute if outside else relative
