"""Provenance records: what produced an output (inputs, params, code).

Every stage writes one beside its outputs (inside its JSON metrics, or as a ``.json`` sidecar for
figures), so any number or figure traces back to exact inputs, parameters and code.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import picollm
from picollm.files import sha256_file


@cache
def code_version() -> dict[str, Any]:
    """The package version and, when run from a git checkout, its commit and whether it is dirty."""
    version: dict[str, Any] = {"package": "picollm", "version": picollm.__version__}
    source_dir = Path(picollm.__file__).resolve().parent
    try:
        commit = _git(source_dir, "rev-parse", "HEAD")
        dirty = bool(_git(source_dir, "status", "--porcelain", "--", str(source_dir)))
    except (OSError, subprocess.CalledProcessError):
        return version
    version.update(git_commit=commit, git_dirty=dirty)
    return version


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def file_hashes(paths: Iterable[Path | str]) -> dict[str, str]:
    """``{path: sha256}`` for each input file."""
    return {str(p): sha256_file(p) for p in paths}


def record(
    stage: str,
    inputs: Iterable[Path | str],
    params: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A lineage record for an output of ``stage``.

    It holds no timestamp, so the same inputs, params and code give byte-identical records.
    """
    return {
        "stage": stage,
        "inputs": file_hashes(inputs),
        "params": dict(params),
        "code": code_version(),
        **extra,
    }
