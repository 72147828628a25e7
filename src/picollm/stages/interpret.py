"""``picollm interpret``: the interpretability study of one trained Transformer.

It writes the model's attention maps on ``interpretability.prompt`` and trains a sparse
autoencoder (Bricken et al. 2023, "Towards Monosemanticity") on the residual stream after block
``interpretability.layer`` (negative: from the last), read over the start of the train split.
Activations are scaled to a mean squared norm of 1 first, so the L1 coefficient means the same
for any model. For ``features_shown`` features, spread from the densest to the rarest of those
that fire often enough, it lists the contexts that activate each most (``features.json`` and the
Markdown table ``features.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.data.loader import TokenStore
from picollm.errors import UserError
from picollm.files import write_json, write_text
from picollm.integrity import verify_files
from picollm.interpret.activations import residual_stream
from picollm.interpret.attention import attention_maps_record
from picollm.interpret.features import feature_examples, spread_by_density
from picollm.interpret.sae import SAETrainConfig, evaluate_sae, save_sae, train_sae
from picollm.models.transformer import TransformerLanguageModel
from picollm.pipeline import lineage
from picollm.stages import add_trained_model_options
from picollm.training import load_trained_model
from picollm.vocab import VOCAB_FILE, Vocabulary

HISTORY_POINTS = 200  # training-curve points kept in features.json


def configure(parser: argparse.ArgumentParser) -> None:
    add_trained_model_options(parser)
    parser.add_argument("--split", type=Path, required=True, help="split.json of the data split")
    parser.add_argument("--attention", type=Path, required=True, help="attention maps (JSON)")
    parser.add_argument("--sae", type=Path, required=True, help="the SAE's weights.safetensors")
    parser.add_argument("--features", type=Path, required=True, help="SAE report (JSON)")
    parser.add_argument("--table", type=Path, required=True, help="SAE report (Markdown)")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    study = params["interpretability"]
    model = load_trained_model(args.weights, args.run)
    if not isinstance(model, TransformerLanguageModel):
        raise UserError(f"interpretability.model: {args.model} is not a transformer ({args.run})")
    vocabulary = Vocabulary.load(args.weights.parent / VOCAB_FILE)

    prompt = vocabulary.encode_text(study["prompt"])
    if not 0 < len(prompt) <= model.config.block_size:
        raise UserError(
            f"interpretability.prompt has {len(prompt)} tokens; it needs 1 to block_size = "
            f"{model.config.block_size}"
        )
    pieces = [vocabulary.decode_text([token]) for token in prompt]
    write_json(
        args.attention, {"model": args.model, **attention_maps_record(model, prompt, pieces)}
    )

    verify_files(args.split, ["train.tokens.npy", "train.docs.npy"])
    store = TokenStore.open(args.split.parent, "train")
    window = model.config.block_size
    wanted = -(-study["tokens"] // window) * window  # whole windows
    if store.n_tokens < window:
        raise UserError(f"the train split has {store.n_tokens} tokens, fewer than one window")
    layer = study["layer"] % model.config.n_blocks  # counted from the first block
    activations = residual_stream(model, store.tokens[:wanted], layer, window)
    scale = float(activations.values.pow(2).sum(dim=1).mean().sqrt())
    scaled = activations.values / scale  # (N, D), mean squared norm 1
    config = SAETrainConfig(
        n_features=study["expansion"] * scaled.shape[1],
        l1_coefficient=study["l1_coefficient"],
        steps=study["steps"],
        batch_size=study["batch_size"],
        learning_rate=study["learning_rate"],
        seed=study["seed"],
    )
    sae, history = train_sae(scaled, config)
    metrics = evaluate_sae(sae, scaled)
    shown = spread_by_density(  # features that fire often enough to fill their examples
        metrics.feature_density,
        study["features_shown"],
        min_density=study["examples_per_feature"] / len(scaled),
    )
    features = feature_examples(
        sae,
        activations,
        scaled,
        shown,
        metrics.feature_density,
        study["examples_per_feature"],
        vocabulary.decode_text,
    )

    save_sae(sae, args.sae)
    summary = {
        "model": args.model,
        "layer": layer,
        "rows": len(scaled),
        "d_model": scaled.shape[1],
        "n_features": config.n_features,
        "activation_scale": scale,
        "metrics": {
            "mse": metrics.mse,
            "l0": metrics.l0,
            "explained_variance": metrics.explained_variance,
            "dead_fraction": metrics.dead_fraction,
        },
        "feature_density": [round(float(d), 8) for d in metrics.feature_density],
        "history": history[:: max(1, len(history) // HISTORY_POINTS)],
        "features": features,
    }
    write_text(args.table, _markdown(summary))
    summary["lineage"] = lineage.record(
        "interpret",
        [args.weights, args.run, args.weights.parent / VOCAB_FILE, args.split],
        params,
        outputs=[str(args.sae)],
    )
    write_json(args.features, summary)
    print(
        f"SAE on {args.model} block {layer}: explained variance "
        f"{metrics.explained_variance:.3f}, L0 {metrics.l0:.1f}, dead {metrics.dead_fraction:.1%}"
    )


def _markdown(summary: dict[str, Any]) -> str:
    """The shown features and their top contexts as a Markdown table (the token in bold)."""
    m = summary["metrics"]
    lines = [
        f"# SAE features of {summary['model']}, residual stream after block {summary['layer']}",
        "",
        f"{summary['n_features']} features on {summary['rows']:,} tokens: explained variance "
        f"{m['explained_variance']:.3f}, L0 {m['l0']:.1f} features per token, "
        f"{m['dead_fraction']:.1%} dead.",
        "",
        "| feature | density | top contexts (activation) |",
        "|---:|---:|---|",
    ]
    for feature in summary["features"]:
        contexts = "<br>".join(
            f"{_cell(e['before'])}**{_cell(e['token'])}** ({e['activation']:.3g})"
            for e in feature["top"]
        )
        lines.append(f"| {feature['feature']} | {feature['density']:.4f} | {contexts} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎").replace("*", "\\*")
