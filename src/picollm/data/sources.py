"""Where documents come from: TinyStories (the Hub, local files, or the story grammar) and text files.

Every source yields :class:`Documents`: the texts of one source and split, in order, with their
generating log-probabilities when a generator made them, and a provenance record.

TinyStories modes (:func:`load_tinystories`):

* ``local``: read a file or a folder of files (``.txt`` stories each ended by a line
  ``<|endoftext|>``, ``.json``/``.jsonl`` records with a ``text`` field, ``.parquet`` with a
  ``text`` column) through ``datasets.load_dataset(..., streaming=True)``, the same way the Hub
  split is read. Files whose name contains ``valid`` hold the validation split, all others train.
* ``hub``: stream ``roneneldan/TinyStories`` (train and the official validation split) from the
  Hugging Face Hub; only the first N stories are fetched. Unreachable: :class:`HubUnavailableError`.
* ``excerpt``: the excerpt shipped inside the package (``tinystories_excerpt/``: 2,316 real train
  stories of a 2 MiB sample, the last tenth held out as its validation split; built by
  :mod:`picollm.data.excerpt`), read by the same ``datasets.load_dataset`` call as the Hub.
* ``generated``: draw stories from :mod:`picollm.data.story_grammar` (a synthetic language).
* ``auto``: ``local`` when a path is given, else ``hub``, else (Hub unreachable) ``excerpt``
  with a warning. The mode actually used is returned.

Text files (:func:`read_input_file`): one document per non-empty stripped line (as the course
starter) or per block of lines ended by a blank line or a ``<|endoftext|>`` line. Files are
checked before anything is tokenised; problems raise :class:`InputFileError` naming the file and
line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from picollm.data.synthetic import generate, resolve_params
from picollm.errors import UserError
from picollm.files import sha256_file
from picollm.tokenizer import EOT_TOKEN

MAX_LINE_CHARS = 1_000_000
DOCUMENT_MODES = ("line", "block")
TINYSTORIES_REPO = "roneneldan/TinyStories"
TINYSTORIES_SOURCE = "tinystories"
TINYSTORIES_MODES = ("auto", "hub", "local", "excerpt", "generated")
EXCERPT_PACKAGE_DIR = "data/tinystories_excerpt"
LOCAL_BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
VALIDATION_SEED_OFFSET = 2**32  # generated validation stories use seed + 2**32: a separate stream


@dataclass(frozen=True)
class Documents:
    """The texts of one source (and split), in order."""

    source: str  # e.g. "tinystories", "3seqs.txt", "counting"
    texts: list[str] = field(repr=False)
    split: str | None = None  # "train"/"validation" where the source defines splits
    logprobs: list[float] | None = field(default=None, repr=False)  # log p(doc), when known
    origin: dict[str, Any] = field(default_factory=dict)  # provenance, JSON-able


class InputFileError(UserError, ValueError):
    """An input file that cannot be used; the message names the file (and line)."""


class HubUnavailableError(UserError, ConnectionError):
    """The Hugging Face Hub cannot be reached (offline mode set, no network, or a timeout)."""


# ----------------------------------------------------------------------------- text files


def read_input_file(
    path: str | Path, document_mode: str = "line", max_line_chars: int = MAX_LINE_CHARS
) -> list[str]:
    """The documents of a UTF-8 text file; raise :class:`InputFileError` for an unusable file.

    ``document_mode="line"``: every non-empty stripped line is a document. ``"block"``: blocks of
    lines ended by a blank line or a line ``<|endoftext|>`` are documents (inner line breaks kept,
    the block stripped). Lines that are exactly ``<|endoftext|>`` never become text.
    """
    if document_mode not in DOCUMENT_MODES:
        raise ValueError(f"document_mode must be one of {DOCUMENT_MODES}, got {document_mode!r}")
    if (
        isinstance(max_line_chars, bool)
        or not isinstance(max_line_chars, int)
        or max_line_chars < 1
    ):
        raise ValueError(f"max_line_chars must be an int >= 1, got {max_line_chars!r}")
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file {str(path)!r} does not exist or is not a file")
    data = path.read_bytes()
    if not data:
        raise InputFileError(f"input file {str(path)!r} is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputFileError(
            f"input file {str(path)!r} looks binary: NUL byte at line {_line_of(data, nul)} "
            f"(byte offset {nul})"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"input file {str(path)!r} is not valid UTF-8: line {_line_of(data, error.start)}, "
            f"byte offset {error.start} ({error.reason})"
        ) from None
    lines = text.split("\n")
    if max(map(len, lines)) > max_line_chars:
        number = next(i for i, line in enumerate(lines, 1) if len(line) > max_line_chars)
        raise InputFileError(
            f"input file {str(path)!r}: line {number} is longer than {max_line_chars:,} characters"
        )
    documents = _line_documents(lines) if document_mode == "line" else _block_documents(lines)
    if not documents:
        raise InputFileError(
            f"input file {str(path)!r} contains no documents (only blank or {EOT_TOKEN} lines)"
        )
    return documents


def input_file_documents(
    path: str | Path, document_mode: str = "line", max_line_chars: int = MAX_LINE_CHARS
) -> Documents:
    """:func:`read_input_file` as the source named after the file (e.g. ``"3seqs.txt"``)."""
    path = Path(path)
    texts = read_input_file(path, document_mode, max_line_chars)
    origin = {"path": str(path), "sha256": sha256_file(path), "document_mode": document_mode}
    return Documents(source=path.name, texts=texts, origin=origin)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _is_separator(line: str) -> bool:
    return line.strip() == EOT_TOKEN


def _line_documents(lines: Iterable[str]) -> list[str]:
    return [s for line in lines if (s := line.strip()) and s != EOT_TOKEN]


def _block_documents(lines: Iterable[str]) -> list[str]:
    documents, block = [], []
    for line in [*lines, ""]:  # a final blank line ends the last block
        if line.strip() and not _is_separator(line):
            block.append(line.rstrip("\r"))
        elif block:
            documents.append("\n".join(block).strip())
            block = []
    return documents


# ----------------------------------------------------------------------------- TinyStories


@dataclass(frozen=True)
class TinyStories:
    """TinyStories documents (train, then validation when requested) and the mode that made them."""

    used: str  # "hub" | "local" | "excerpt" | "generated"
    documents: list[Documents]


def load_tinystories(
    mode: str = "auto",
    n_train: int | None = 20_000,
    n_validation: int | None = 0,
    local_path: str | Path | None = None,
    seed: int = 0,
    hub_timeout: float = 10.0,
    cache_dir: str | Path | None = None,
) -> TinyStories:
    """The first ``n_train`` train and ``n_validation`` validation stories (None: all).

    Stories are stripped and empty ones skipped. ``seed`` only matters for generated stories
    (validation ones use ``seed + 2**32``). ``hub_timeout`` (seconds) bounds the Hub probe;
    ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` make the Hub unreachable without a probe.
    ``cache_dir`` is passed to ``datasets.load_dataset``.
    """
    if mode not in TINYSTORIES_MODES:
        raise ValueError(f"mode must be one of {TINYSTORIES_MODES}, got {mode!r}")
    for name, n in (("n_train", n_train), ("n_validation", n_validation)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"{name} must be an int >= 0 or None (all), got {n!r}")
    if (
        isinstance(hub_timeout, bool)
        or not isinstance(hub_timeout, int | float)
        or hub_timeout <= 0
    ):
        raise ValueError(f"hub_timeout must be a number of seconds > 0, got {hub_timeout!r}")
    if local_path is not None and mode not in ("auto", "local"):
        raise ValueError(f"local_path is only read in modes 'auto' and 'local', not {mode!r}")
    if mode == "local" and local_path is None:
        raise ValueError("mode 'local' needs a local_path (a file or a folder)")
    wanted = {"train": n_train, "validation": n_validation}
    if mode == "generated":
        return _generated_tinystories(wanted, seed)
    if mode == "excerpt":
        return _excerpt_tinystories(wanted, cache_dir)
    if local_path is not None:
        return _local_tinystories(Path(local_path), wanted, cache_dir)
    try:
        return _hub_tinystories(wanted, hub_timeout, cache_dir)
    except HubUnavailableError as error:
        if mode == "hub":
            raise
        warnings.warn(
            f"TinyStories: {error}; falling back to the excerpt shipped with picollm "
            f"({excerpt_dir()})",
            RuntimeWarning,
            stacklevel=2,
        )
        return _excerpt_tinystories(wanted, cache_dir)


def excerpt_dir() -> Path:
    """The folder of the TinyStories excerpt shipped inside the package."""
    return Path(str(resources.files("picollm") / EXCERPT_PACKAGE_DIR))


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value now."""
    return any(
        os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for var in OFFLINE_ENV_VARS
    )


def _generated_tinystories(wanted: dict[str, int | None], seed: int) -> TinyStories:
    documents = []
    for split, n in wanted.items():
        if n == 0:
            continue
        if n is None:
            raise ValueError(f"generated TinyStories need a number of {split} stories, not None")
        split_seed = seed + (VALIDATION_SEED_OFFSET if split == "validation" else 0)
        corpus = generate("story_grammar", n, split_seed)
        origin = {
            "generator": "story_grammar",
            "params": resolve_params("story_grammar"),
            "seed": split_seed,
        }
        documents.append(
            Documents(TINYSTORIES_SOURCE, corpus.texts, split, corpus.logprobs, origin)
        )
    return TinyStories("generated", documents)


def _hub_tinystories(
    wanted: dict[str, int | None], timeout: float, cache_dir: str | Path | None
) -> TinyStories:
    if hub_offline():
        raise HubUnavailableError(f"the Hub is disabled by {' or '.join(OFFLINE_ENV_VARS)}")
    try:
        from huggingface_hub import HfApi

        revision = HfApi().dataset_info(TINYSTORIES_REPO, timeout=timeout).sha
    except Exception as error:
        raise HubUnavailableError(f"cannot reach the Hub ({error})") from error
    origin = {"hub": TINYSTORIES_REPO, "revision": revision}
    return _dataset_tinystories("hub", TINYSTORIES_REPO, origin, wanted, cache_dir, revision)


def _excerpt_tinystories(
    wanted: dict[str, int | None], cache_dir: str | Path | None
) -> TinyStories:
    folder = excerpt_dir()
    origin = {
        "excerpt": str(folder),
        "files": {f.name: sha256_file(f) for f in sorted(folder.glob("*.parquet"))},
    }
    return _dataset_tinystories("excerpt", str(folder), origin, wanted, cache_dir)


def _dataset_tinystories(
    used: str,
    location: str,
    origin: dict[str, Any],
    wanted: dict[str, int | None],
    cache_dir: str | Path | None,
    revision: str | None = None,
) -> TinyStories:
    """Stream the first stories of each wanted split of a Hugging Face dataset (a Hub repository
    or a local dataset folder) through ``datasets.load_dataset``."""
    import datasets

    documents = []
    for split, n in wanted.items():
        if n == 0:
            continue
        try:
            rows = datasets.load_dataset(
                location, split=split, revision=revision, streaming=True, cache_dir=cache_dir
            )
            texts = _first_stories((row["text"] for row in rows), n)
        except Exception as error:
            if used == "hub":
                raise HubUnavailableError(f"reading {location} {split} failed ({error})") from error
            raise
        documents.append(
            Documents(TINYSTORIES_SOURCE, texts, split, origin={**origin, "split": split})
        )
    return TinyStories(used, documents)


def _local_tinystories(
    path: Path, wanted: dict[str, int | None], cache_dir: str | Path | None
) -> TinyStories:
    files = _local_files(path)
    documents = []
    for split, n in wanted.items():
        if n == 0:
            continue
        split_files = [f for f in files if _local_split(f) == split]
        if not split_files:
            raise InputFileError(
                f"TinyStories local path {str(path)!r} has no {split} file (validation files "
                "have 'valid' in their name; all others are train). Add one, or hold out part "
                "of train as the test set: data.tinystories.max_validation_stories: 0 and "
                "split.tinystories_test: holdout in params.yaml"
            )
        texts = _first_stories(_local_stories(split_files, cache_dir), n)
        origin = {
            "local": str(path),
            "split": split,
            "files": [{"path": str(f), "sha256": sha256_file(f)} for f in split_files],
        }
        documents.append(Documents(TINYSTORIES_SOURCE, texts, split, origin=origin))
    return TinyStories("local", documents)


def _local_files(path: Path) -> list[Path]:
    """The supported files at ``path`` (a file, or a folder's files in name order)."""
    if path.is_file():
        if path.suffix.lower() not in LOCAL_BUILDERS:
            raise ValueError(
                f"TinyStories file {str(path)!r} must end in one of {sorted(LOCAL_BUILDERS)}"
            )
        return [path]
    if not path.is_dir():
        raise InputFileError(
            f"TinyStories local path {str(path)!r} does not exist (data.tinystories.path)"
        )
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in LOCAL_BUILDERS)
    if not files:
        raise InputFileError(
            f"TinyStories folder {str(path)!r} has no file ending in {sorted(LOCAL_BUILDERS)}"
        )
    return files


def _local_split(path: Path) -> str:
    return "validation" if "valid" in path.name.lower() else "train"


def _local_stories(files: Sequence[Path], cache_dir: str | Path | None) -> Iterator[str]:
    """Stories of local files, read lazily through ``datasets`` streaming."""
    import datasets

    for path in files:
        builder = LOCAL_BUILDERS[path.suffix.lower()]
        rows = datasets.load_dataset(
            builder, data_files=[str(path)], split="train", streaming=True, cache_dir=cache_dir
        )
        if builder == "text":
            yield from _txt_stories((row["text"] for row in rows), path)
        else:
            yield from _text_fields(rows, path)


def _text_fields(rows: Iterable[dict[str, Any]], path: Path) -> Iterator[str]:
    for row in rows:
        if not isinstance(row.get("text"), str):
            raise ValueError(
                f"TinyStories file {str(path)!r}: records need a string 'text' field, got "
                f"fields {sorted(row)}"
            )
        yield row["text"]


def _txt_stories(lines: Iterable[str], path: Path) -> Iterator[str]:
    """Stories of a ``.txt`` file: lines up to each ``<|endoftext|>`` line, joined by ``\\n``.

    Text after the last separator is an unterminated (cut-off) story: dropped with a warning.
    """
    story: list[str] = []
    for line in lines:
        if _is_separator(line):
            yield "\n".join(story)
            story = []
        else:
            story.append(line)
    tail = "\n".join(story).strip()
    if tail:
        warnings.warn(
            f"TinyStories file {str(path)!r}: dropped {len(tail):,} characters after the last "
            f"{EOT_TOKEN} line (an unterminated story)",
            RuntimeWarning,
            stacklevel=2,
        )


def _first_stories(texts: Iterable[str], n: int | None) -> list[str]:
    """The first ``n`` (None: all) non-empty stripped texts."""
    return list(islice((s for text in texts if (s := text.strip())), n))
