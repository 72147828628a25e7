"""Test-wide settings."""

import torch

# Each xdist worker gets one core of the two on CI; more threads would only fight over them.
torch.set_num_threads(1)
