"""Small nn.Sequential models like the ones the model registry builds."""

import pytest
import torch
from torch import nn

# Tiny models on a shared 2-core machine: intra-op threads only add contention (measured: a
# 40-step Adam loop takes 0.07 s on 1 thread, 2.5 s on 2 under load).
torch.set_num_threads(1)


def mlp(width: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def cnn1d() -> nn.Sequential:
    """For input (N, 1, 40)."""
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 16, 3), nn.ReLU(), nn.Dropout(0.1), nn.AvgPool1d(2),
        nn.Flatten(), nn.Linear(16 * 9, 32), nn.GELU(), nn.Linear(32, 10),
    )


def cnn2d() -> nn.Sequential:
    """For input (N, 3, 32, 32)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4, 10),
    )


MODELS = {"mlp": (mlp, (64,)), "cnn1d": (cnn1d, (1, 40)), "cnn2d": (cnn2d, (3, 32, 32))}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
