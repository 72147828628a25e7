"""Refusing to build on damaged data: files checked against the SHA-256 their record states.

A stage that writes data files records their hashes in a JSON record beside them: ``corpus.json``
(``parquet_sha256`` of ``corpus.parquet``), ``split.json`` (``splits.<split>.sha256``, by file
name, and ``vocab.sha256`` of ``vocab.json``), a training run's ``run.json`` (a top-level ``sha256`` map of file name -> digest, here
``weights.safetensors``; other records can add files to such a map, e.g. ``vocab.json``). A stage that reads such files calls :func:`verify_files` once,
before its work, for the files it reads; ``picollm trace`` compares every recorded hash too.
A mismatch (a flipped bit, a file overwritten and touched so its time says it is current) is
refused with the file's name and the command that rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from picollm.errors import UserError
from picollm.files import read_json, sha256_file
from picollm.vocab import VOCAB_FILE

REBUILD_STAGE = {"corpus.json": "tokenize", "split.json": "split"}
"""The pipeline stage that writes each record and the files it lists."""


class IntegrityError(UserError):
    """A data file differs from the hash its record states, or is missing."""


def recorded_hashes(record: Mapping[str, Any]) -> dict[str, str]:
    """``{file name: sha256}`` that a stage's record states for the files beside it."""
    maps = [record.get("sha256")]
    splits = record.get("splits")
    if isinstance(splits, Mapping):
        maps += [split.get("sha256") for split in splits.values() if isinstance(split, Mapping)]
    hashes = {}
    if isinstance(record.get("parquet"), str) and isinstance(record.get("parquet_sha256"), str):
        hashes[record["parquet"]] = record["parquet_sha256"]
    vocab = record.get("vocab")  # split.json: the token table beside the arrays
    if isinstance(vocab, Mapping) and isinstance(vocab.get("sha256"), str):
        hashes[VOCAB_FILE] = vocab["sha256"]
    for found in maps:
        if isinstance(found, Mapping):
            hashes.update({k: v for k, v in found.items() if isinstance(v, str)})
    return hashes


def rebuild_command(record_path: Path | str) -> str:
    """The commands that rebuild the record at ``record_path`` and the files it lists."""
    stage = REBUILD_STAGE.get(Path(record_path).name)
    if stage is None:  # a run folder: deleting it makes both tools rebuild it
        return f"delete {Path(record_path).parent} and rerun snakemake (with DVC: dvc repro)"
    return f"snakemake --forcerun {stage} (with DVC: dvc repro --force {stage})"


def verify_files(record_path: Path | str, names: Iterable[str]) -> dict[str, str]:
    """Check the files ``names`` beside ``record_path`` against the hashes it records; return
    ``{name: sha256}`` as hashed now. Raise IntegrityError naming the file and the rebuild
    command if one is missing, unrecorded or different."""
    record_path = Path(record_path)
    recorded = recorded_hashes(read_json(record_path))
    actual = {}
    for name in names:
        path = record_path.parent / name
        fix = f"rebuild it: {rebuild_command(record_path)}"
        if name not in recorded:
            raise IntegrityError(f"{record_path} records no sha256 for {name}; {fix}")
        if not path.is_file():
            raise IntegrityError(f"{path} is missing; {fix}")
        actual[name] = sha256_file(path)
        if actual[name] != recorded[name]:
            raise IntegrityError(
                f"{path} is damaged or was replaced: its sha256 {actual[name][:12]}... is not "
                f"the {recorded[name][:12]}... that {record_path.name} records; {fix}"
            )
    return actual
