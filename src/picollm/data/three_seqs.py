"""The course's ``3seqs.txt``, rebuilt byte for byte from its rule instead of being shipped.

The file has 3,333 lines of three kinds, numbers separated by single spaces:

* C (counting): the integers 0, 1, ..., 999;
* E (evens): 0, 2, ..., 998;
* P (powers of two): 2^0, 2^1, ..., 2^99.

Order: C, then 100 x (C, E, P), then E, P, then 1,010 x (C, E, P); every line ends with
``\\n``. Each kind occurs 1,111 times. The result is 8,304,725 bytes with SHA-256
``bf8d2c75...abcfba6d`` (git blob ``f9bb2f99...``), the file distributed with the Fall 2025
starter code.
"""

from __future__ import annotations

from pathlib import Path

from picollm.files import write_text

THREE_SEQS_SHA256 = "bf8d2c759be3ea5ca75cca8a29150f96711619874f03d8ce6dd97955abcfba6d"
THREE_SEQS_NAME = "3seqs.txt"


def three_seqs_text() -> str:
    """The exact contents of the course's ``3seqs.txt``."""
    counting = " ".join(str(i) for i in range(1000))
    evens = " ".join(str(i) for i in range(0, 1000, 2))
    powers = " ".join(str(2**i) for i in range(100))
    cycle = [counting, evens, powers]
    lines = [counting] + 100 * cycle + [evens, powers] + 1010 * cycle
    return "".join(line + "\n" for line in lines)


def write_three_seqs(path: str | Path) -> Path:
    """Write ``3seqs.txt`` to ``path`` atomically and return the path."""
    write_text(path, three_seqs_text())
    return Path(path)
