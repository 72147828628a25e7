"""Interpretability: attention maps and sparse-autoencoder features of trained models."""
