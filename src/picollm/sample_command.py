"""``picollm sample RUN_DIR``: print samples from a trained model, by hand.

Everything it needs is in the run folder (see ``picollm.run_folder``); it reads no params file.
Heavy libraries (torch, the tokenizer) load only after the arguments are checked, so a mistake is
reported at once; nothing on this path imports the pipeline's libraries (pandas, Snakemake).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SEPARATOR = "---"
"""Printed between two samples."""


def _bounded(kind: type, low: float, high: float | None = None, low_open: bool = False):
    """An argparse type: ``kind`` within [low, high] (or (low, high]), else a one-line error."""
    span = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a{'n integer' if kind is int else ' number'}"
            ) from None
        if value < low or (low_open and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is outside {span}")
        return value

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="a trained model's folder, e.g. results/models/transformer or a sweep run's "
        "results/sweeps/transformer/d_model/0 (holds weights.safetensors and run.json)",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="text to continue (repeatable); default: none, samples start a new story",
    )
    parser.add_argument(
        "--num-samples",
        type=_bounded(int, 1),
        default=1,
        metavar="N",
        help="samples per prompt (default: 1)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=_bounded(int, 0),
        default=100,
        metavar="M",
        help="at most this many tokens per sample; a sample also ends at <|endoftext|> "
        "(default: 100)",
    )
    parser.add_argument(
        "--temperature",
        type=_bounded(float, 0),
        default=1.0,
        metavar="T",
        help="divides the logits: below 1 sharper, above 1 flatter, 0 greedy (default: 1)",
    )
    parser.add_argument(
        "--top-p",
        type=_bounded(float, 0, 1, low_open=True),
        default=0.9,
        metavar="P",
        help="nucleus sampling: draw from the most likely tokens holding mass P; 1 keeps every "
        "token (default: 0.9)",
    )
    parser.add_argument(
        "--top-k",
        type=_bounded(int, 1),
        metavar="K",
        help="draw from the K most likely tokens only (default: no limit)",
    )
    parser.add_argument(
        "--seed",
        type=_bounded(int, 0),
        default=0,
        metavar="S",
        help="random seed: the same seed and settings give the same samples (default: 0)",
    )
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="always take the most likely token (ignores temperature, top-p and top-k)",
    )
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="keep the model loaded and read prompts from standard input, one per line, "
        "until end of input",
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="print one JSON object per sample (prompt, sample, text, tokens) instead of text",
    )


def run(args: argparse.Namespace) -> None:
    from picollm.run_folder import RunFolder

    folder = RunFolder.open(args.run_dir)
    sampler = _Sampler(folder.load_model(), folder.codec(), args)
    for prompt in args.prompt or ([] if args.interactive else [""]):
        sampler.print_samples(prompt)
    if args.interactive:
        for prompt in _read_prompts(sys.stdin):
            sampler.print_samples(prompt)


def _read_prompts(stream: Any) -> Iterable[str]:
    """Lines of ``stream`` without their line break; a ``> `` prompt when it is a terminal."""
    interactive = stream.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = stream.readline()
        if not line:
            return
        yield line.rstrip("\r\n")


class _Sampler:
    """A loaded model, its codec and the command's settings; prints samples as they come."""

    def __init__(self, model: Any, codec: Any, args: argparse.Namespace):
        self.model, self.codec, self.args = model, codec, args
        self.printed = 0

    def print_samples(self, prompt: str) -> None:
        """Draw ``--num-samples`` continuations of ``prompt`` and print them."""
        from picollm.errors import UserError
        from picollm.generation import generate

        args, codec = self.args, self.codec
        context = codec.encode(prompt) or [codec.eot_id]  # no prompt: the start of a document
        if max(context) >= self.model.vocab_size:
            raise UserError(
                f"{args.run_dir}: the prompt has token id {max(context)} but the model knows "
                f"{self.model.vocab_size} ids; is vocab.json the one it was trained with?"
            )
        generation = generate(
            self.model,
            [context] * args.num_samples,
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            greedy=args.greedy,
            seed=args.seed,
            stop_token=codec.eot_id,
        )
        for index, tokens in enumerate(generation.tokens):
            text = codec.decode(tokens[:-1] if tokens[-1:] == [codec.eot_id] else tokens)
            if args.jsonl:
                record = {"prompt": prompt, "sample": index, "text": text, "tokens": tokens}
                print(json.dumps(record), flush=True)
                continue
            if self.printed:
                print(SEPARATOR)
            print(prompt + text, flush=True)
            self.printed += 1
