"""Speed of the model zoo on CPU, measured against references run in the same process.

1. k-gram MLP, forward + backward: the vectorised model vs the starter's per-position loop over
   the same weights (for one-hot input the loop also builds the explicit one-hot vectors and
   applies the equivalent ``nn.Linear``, as the starter does).
2. Transformer training steps (forward + backward + AdamW, fp32): ours vs the same shape built
   from PyTorch's ``nn.TransformerEncoderLayer`` (norm_first, causal mask, batch_first), with
   model FLOPs utilisation against a matmul ceiling timed in this run.
3. Decoding 1,024 tokens with a KV cache that preallocates (doubling) vs one that concatenates.

Run ``python benchmarks/bench_models.py`` (a few minutes) or ``--quick`` (a smoke run, written
to benchmarks/out/). Prints markdown tables and writes them to benchmarks/results/bench_models.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved_seconds, machine, markdown_table  # benchmarks/common.py
from torch import nn

from picollm.models import build
from picollm.models.kgram import KGramMLPLanguageModel
from picollm.models.transformer import TransformerLanguageModel, TransformerState

RESULTS = Path(__file__).parent / "results" / "bench_models.md"
QUICK_RESULTS = Path(__file__).parent / "out" / "bench_models.md"


def seconds(run: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``repeats`` calls (after one untimed call if ``warm_up``)."""
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- 1. k-gram MLP ---------------------------------------------------------------------------------


def starter_loop_logits(model: KGramMLPLanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """The starter's forward: a Python loop over positions and examples, one MLP call each."""
    k, pad = model.config.kgram_k, model.padding_index
    one_hot = model.config.input == "onehot"
    if one_hot:  # the starter's Linear over k one-hot vectors, holding the model's weights
        first_layer = nn.Linear(*model.window_layer.weight.shape[::-1])
        first_layer.weight = nn.Parameter(model.window_layer.weight.T)
        first_layer.bias = model.window_layer.bias
    batch, time_steps = tokens.shape
    rows = []
    for t in range(time_steps):
        for b in range(batch):
            window = [tokens[b, p].item() if p >= 0 else pad for p in range(t - k + 1, t + 1)]
            window = torch.tensor(window)
            if one_hot:
                vector = F.one_hot(window, model.vocab_size + 1).float().flatten()
                hidden = model.hidden_layers(first_layer(vector.unsqueeze(0)))
                rows.append(model.unembedding(hidden))
            else:
                rows.append(model.window_logits(window.unsqueeze(0)))
    return torch.cat(rows).view(time_steps, batch, -1).transpose(0, 1)


def forward_backward(forward: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor):
    def step() -> None:
        logits = forward(tokens)
        F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()

    return step


def bench_kgram(quick: bool) -> str:
    cases = [  # (vocab, k, embed, hidden, batch, time)
        (128, 3, 16, 32, 16, 256),
        (256, 3, 32, 64, 16, 256),
        (50257, 3, 32, 64, 4, 16),  # GPT-2's vocabulary: the unembedding matmul dominates
    ]
    if quick:
        cases = [(64, 3, 8, 16, 2, 8)]
    rows = []
    for vocab, k, embed, hidden, batch, steps in cases:
        for input_ in ("embedding", "onehot"):
            torch.manual_seed(0)
            model = build({"type": "kgram_mlp", "vocab_size": vocab, "kgram_k": k,
                           "embed_size": embed, "hidden_size": hidden, "input": input_})  # fmt: skip
            tokens = torch.randint(0, vocab, (batch, steps))
            torch.testing.assert_close(starter_loop_logits(model, tokens), model(tokens))
            vectorised = seconds(forward_backward(model, tokens), repeats=5)
            loop_step = forward_backward(partial(starter_loop_logits, model), tokens)
            loop = seconds(loop_step, repeats=1, warm_up=False)
            rows.append([f"{vocab}", f"{k}", f"{embed}/{hidden}", input_, f"{batch}x{steps}",
                         f"{loop * 1e3:.0f}", f"{vectorised * 1e3:.2f}",
                         f"**{loop / vectorised:.0f}x**"])  # fmt: skip
    return markdown_table(
        ["vocab", "k", "embed/hidden", "input", "B x T", "loop ms", "vectorised ms", "speed-up"],
        rows,
    )


# --- 2. Transformer training throughput ------------------------------------------------------------


class TorchReferenceTransformer(nn.Module):
    """The same shape from PyTorch's own layers: pre-norm ``nn.TransformerEncoderLayer``s
    (LayerNorm, biases, GELU MLP of width 4 D), learned positions, tied unembedding.

    The embeddings get GPT-2's N(0, 0.02) like ours. With ``nn.Embedding``'s default N(0, 1)
    the tied logits have std ~11, about a third of the softmax gradient entries are float32
    denormals, and the unembedding's backward matmuls run >10x slower on x86.
    """

    def __init__(self, vocab: int, block_size: int, d_model: int, n_heads: int, n_blocks: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(block_size, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, n_blocks, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d_model)
        self.unembedding = nn.Linear(d_model, vocab, bias=False)
        self.unembedding.weight = self.token_embedding.weight
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        time_steps = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positions.weight[:time_steps]
        mask = nn.Transformer.generate_square_subsequent_mask(time_steps)
        return self.unembedding(self.final_norm(self.encoder(x, mask=mask, is_causal=True)))

    def matmul_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.positions.weight.numel()


def training_step(model: nn.Module, tokens: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def matmul_flops_per_second(size: int, repeats: int) -> float:
    """Achieved fp32 FLOP/s of a square matmul: the ceiling for MFU."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / seconds(lambda: a @ b, repeats)


def bench_transformer_training(quick: bool) -> str:
    d_model, n_heads, n_blocks, batch, context = 128, 4, 4, 8, 128
    vocabularies = ((50257, 3), (256, 10))  # (vocab, timed steps per model)
    if quick:
        d_model, n_heads, n_blocks, batch, context = 32, 2, 1, 2, 16
        vocabularies = ((512, 1),)
    ceiling = matmul_flops_per_second(256 if quick else 2048, repeats=5)
    rows = []
    for vocab, repeats in vocabularies:
        torch.manual_seed(0)
        shape = {"vocab_size": vocab, "block_size": context, "d_model": d_model,
                 "n_heads": n_heads, "n_blocks": n_blocks}  # fmt: skip
        ours: TransformerLanguageModel = build({"type": "transformer", **shape})
        explicit = build(
            {"type": "transformer", **shape, "attention_options": {"path": "explicit"}}
        )
        reference = TorchReferenceTransformer(vocab, context, d_model, n_heads, n_blocks)
        tokens = torch.randint(0, vocab, (batch, context + 1))
        times = interleaved_seconds(
            {
                "ours (SDPA)": training_step(ours, tokens),
                "ours (explicit attention)": training_step(explicit, tokens),
                "torch TransformerEncoderLayer": training_step(reference, tokens),
            },
            repeats,
        )
        flops = {
            "ours (SDPA)": ours.training_flops_per_token(context),
            "ours (explicit attention)": ours.training_flops_per_token(context),
            "torch TransformerEncoderLayer": 6 * reference.matmul_parameters()
            + 12 * n_blocks * context * d_model,
        }
        reference_time = times["torch TransformerEncoderLayer"]
        for name, step_time in times.items():
            tokens_per_second = batch * context / step_time
            rows.append([f"{vocab}", name, f"{step_time * 1e3:.0f}", f"{tokens_per_second:,.0f}",
                         f"**{reference_time / step_time:.2f}x**",
                         f"{tokens_per_second * flops[name] / ceiling:.1%}"])  # fmt: skip
    sizes = (
        f"d_model={d_model}, heads={n_heads}, blocks={n_blocks}, batch={batch}, "
        f"context={context}, fp32, AdamW; matmul ceiling {ceiling / 1e9:.1f} GFLOP/s "
        f"(square fp32 matmul); MFU = tokens/s x (6N + 12 L T D) / ceiling"
    )
    header = ["vocab", "model", "ms/step", "tokens/s", "vs torch", "MFU"]
    return sizes + "\n\n" + markdown_table(header, rows)


# --- 3. KV cache: preallocate vs concatenate -------------------------------------------------------


@dataclass
class ConcatKVCache:
    """The alternative to ``KVCache``: grow by ``torch.cat``, copying everything every step."""

    keys: torch.Tensor  # (B, H, S, hd)
    values: torch.Tensor

    @property
    def length(self) -> int:
        return self.keys.shape[-2]

    def append(self, keys: torch.Tensor, values: torch.Tensor):
        self.keys = torch.cat((self.keys, keys), dim=-2)
        self.values = torch.cat((self.values, values), dim=-2)
        return self.keys, self.values


def concat_state(model: TransformerLanguageModel, batch: int) -> TransformerState:
    attention = model.blocks[0].attention
    empty = torch.empty(batch, attention.n_heads, 0, attention.head_dim)
    return TransformerState([ConcatKVCache(empty, empty) for _ in model.blocks])


def decode(model, tokens: torch.Tensor, state: TransformerState) -> torch.Tensor:
    """Feed ``tokens`` one at a time (teacher forcing); return the last logits."""
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            logits, state = model.forward_step(tokens[:, t : t + 1], state, last_only=True)
    return logits


def decode_fresh(
    model: TransformerLanguageModel,
    tokens: torch.Tensor,
    new_state: Callable[[], TransformerState],
) -> torch.Tensor:
    return decode(model, tokens, new_state())


def bench_kv_cache(quick: bool) -> str:
    length, d_model, n_heads, n_blocks, repeats = 1024, 128, 4, 4, 3
    if quick:
        length, d_model, n_heads, n_blocks, repeats = 64, 32, 2, 1, 1
    torch.manual_seed(0)
    model: TransformerLanguageModel = build({
        "type": "transformer", "vocab_size": 256, "block_size": length, "d_model": d_model,
        "n_heads": n_heads, "n_blocks": n_blocks, "position": "rope",
    }).eval()  # fmt: skip
    rows = []
    for batch in (1, 8):
        tokens = torch.randint(0, 256, (batch, length))
        torch.testing.assert_close(
            decode(model, tokens, model.new_state(batch)),
            decode(model, tokens, concat_state(model, batch)),
        )
        cached = {
            "preallocated, doubling (KVCache)": partial(model.new_state, batch),
            "torch.cat every step": partial(concat_state, model, batch),
        }
        times = interleaved_seconds(
            {name: partial(decode_fresh, model, tokens, state) for name, state in cached.items()},
            repeats,
        )
        concat_time = times["torch.cat every step"]
        for name, total in times.items():
            rows.append([f"{batch}", name, f"{total:.2f}", f"{batch * length / total:,.0f}",
                         f"{concat_time / total:.2f}x"])  # fmt: skip
    sizes = (
        f"decode {length} tokens one at a time (last_only logits), d_model={d_model}, "
        f"heads={n_heads}, blocks={n_blocks}, vocab 256, RoPE"
    )
    header = ["batch", "cache", "seconds", "tokens/s", "vs torch.cat"]
    return sizes + "\n\n" + markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for CI")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    output = QUICK_RESULTS if args.quick else RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    sections = [
        ("## 1. k-gram MLP forward + backward: vectorised vs the starter's per-position loop",
         bench_kgram),
        ("## 2. Transformer training throughput vs nn.TransformerEncoderLayer",
         bench_transformer_training),
        ("## 3. KV cache for decoding: preallocate vs concatenate", bench_kv_cache),
    ]  # fmt: skip
    report = f"# bench_models\n\n{machine()}\n"
    print(report, flush=True)
    for title, bench in sections:
        section = f"\n{title}\n\n{bench(args.quick)}\n"
        print(section, flush=True)
        report += section
        output.write_text(report)  # each finished section is kept even if a later one fails


if __name__ == "__main__":
    main()
