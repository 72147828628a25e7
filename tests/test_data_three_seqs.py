"""3seqs.txt is rebuilt byte for byte: the course file's SHA-256 and git blob hash."""

import hashlib

from picollm.data.three_seqs import THREE_SEQS_SHA256, three_seqs_text, write_three_seqs


def test_three_seqs_is_the_course_file():
    data = three_seqs_text().encode("ascii")
    assert hashlib.sha256(data).hexdigest() == THREE_SEQS_SHA256
    assert THREE_SEQS_SHA256 == "bf8d2c759be3ea5ca75cca8a29150f96711619874f03d8ce6dd97955abcfba6d"
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert blob == "f9bb2f992bbaead649514fc7a72a7f2fbfd0ad75"
    assert len(data) == 8_304_725


def test_three_seqs_structure():
    lines = three_seqs_text().split("\n")
    assert lines[-1] == ""  # a newline after every line
    lines = lines[:-1]
    assert len(lines) == 3333
    counting, evens, powers = lines[1], lines[2], lines[3]
    assert counting.split() == [str(i) for i in range(1000)]
    assert evens.split() == [str(i) for i in range(0, 1000, 2)]
    assert powers.split() == [str(2**i) for i in range(100)]
    assert [lines.count(kind) for kind in (counting, evens, powers)] == [1111, 1111, 1111]
    assert lines[0] == counting and lines[301:303] == [evens, powers]
    assert lines[303:306] == [counting, evens, powers]


def test_write_three_seqs_atomically(tmp_path):
    path = write_three_seqs(tmp_path / "sub" / "3seqs.txt")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == THREE_SEQS_SHA256
    assert [p.name for p in path.parent.iterdir()] == ["3seqs.txt"]  # no temporary file left
