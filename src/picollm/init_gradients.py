"""Gradient norm per layer at initialisation: why post-norm Transformers need warm-up.

Xiong et al. 2020 (arXiv 2002.04745, section 3 and Fig. 3) show that at initialisation a
post-norm Transformer's gradients are largest in its last layers, so a large learning rate
without warm-up makes those layers' first updates too big; a pre-norm Transformer's gradients
are about the same size in every layer. This module measures the same quantity on a picollm
Transformer: the gradient norm of each block's parameters for one batch, before any update.

What it shows here need not be their figure: picollm initialises as GPT-2 does (embeddings of
std 0.02, residual projections scaled by depth) and normalises with RMSNorm. Measured once on
a TinyStories batch (6 blocks, d_model 64, T = 64), the MLP output gradient falls from 0.34 in
the first block to 0.27 in the last with pre-norm, and is flat at 0.009 with post-norm.
"""

from __future__ import annotations

import torch

from picollm.models.transformer import TransformerLanguageModel
from picollm.training.loss import next_token_loss

PARTS = ("mlp_out", "attention", "block")
"""``mlp_out``: the MLP's output matrix (Xiong et al.'s Fig. 3 plots this one, their W^2 of
the FFN); ``attention``: every attention parameter; ``block``: all parameters of the block."""


def gradient_norms_at_init(
    model: TransformerLanguageModel, inputs: torch.Tensor, targets: torch.Tensor
) -> dict[str, list[float]]:
    """Per part (see ``PARTS``), the L2 gradient norm of each block, first block first.

    One forward and backward pass of the next-token loss on ``inputs``/``targets`` (B, T), in
    eval mode (no dropout), without updating the weights; the model's gradients and mode are
    left as they were found.
    """
    if not isinstance(model, TransformerLanguageModel):
        raise TypeError(f"model must be a TransformerLanguageModel, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    parameters = [p for p in model.parameters() if p.requires_grad]
    try:
        loss = next_token_loss(model(inputs), targets)  # float32 mean over counted targets
        grads = dict(zip(parameters, torch.autograd.grad(loss, parameters), strict=True))
    finally:
        model.train(was_training)
    norms: dict[str, list[float]] = {part: [] for part in PARTS}
    for block in model.blocks:
        groups = {
            "mlp_out": [block.mlp.down_proj.weight],
            "attention": list(block.attention.parameters()),
            "block": list(block.parameters()),
        }
        for part, members in groups.items():
            squares = sum(grads[p].double().pow(2).sum() for p in members)
            norms[part].append(float(squares.sqrt()))
    return norms
