"""picollm: a reproducible lab for training, sampling and studying pico-sized language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("picollm")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
