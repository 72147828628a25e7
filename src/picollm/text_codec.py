"""Text <-> model token ids for a trained model: the one place the sampling command encodes.

A run folder made before the compact vocabulary holds no ``vocab.json``: its model reads GPT-2
ids directly. A folder with ``vocab.json`` maps text through that vocabulary
(``picollm.vocab.Vocabulary``), whose ids are the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

VOCAB_FILE = "vocab.json"


@dataclass(frozen=True)
class TextCodec:
    """How a model's token ids read as text."""

    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    eot_id: int  # the end-of-text id: a document boundary, and where a sample stops


def gpt2_codec() -> TextCodec:
    """GPT-2 BPE ids as they are (models trained on the full GPT-2 vocabulary)."""
    from picollm.tokenizer import EOT_ID, get_encoding

    encoding = get_encoding()
    return TextCodec(encoding.encode_ordinary, encoding.decode, EOT_ID)


def codec_for(run_dir: Path) -> TextCodec:
    """The codec of the model in ``run_dir``: its ``vocab.json`` if it has one, else GPT-2's."""
    vocab_file = Path(run_dir) / VOCAB_FILE
    if not vocab_file.is_file():
        return gpt2_codec()
    from picollm.vocab import Vocabulary

    vocabulary = Vocabulary.load(vocab_file)
    return TextCodec(vocabulary.encode_text, vocabulary.decode_text, vocabulary.eot_id)
