"""The PyTorch modules of every variant, and the exported wrapper that slices, normalises and
squashes inside the graph so a served request carries raw feature values.

Training runs the ``core`` on pre-sliced, pre-normalised windows (cheaper); the exported
:class:`DirectionModel` wraps the same core with the :class:`Preprocess` step, so both compute
identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finmlops.config.settings import VariantSettings

MIN_STD = 1e-6


class Preprocess(nn.Module):
    """``[B, W_max, F_all]`` raw -> ``[B, W, F]`` normalised: trailing window, feature subset,
    and the training rows' mean/std (stored as buffers, so they are part of the state dict)."""

    index: torch.Tensor
    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(self, window: int, feature_index: Sequence[int], mean: np.ndarray,
                 std: np.ndarray) -> None:
        super().__init__()
        self.window = window
        self.register_buffer("index", torch.tensor(list(feature_index), dtype=torch.long))
        self.register_buffer("mean", torch.tensor(np.asarray(mean, dtype=np.float32)))
        inv = 1.0 / np.maximum(np.asarray(std, dtype=np.float32), MIN_STD)
        self.register_buffer("inv_std", torch.tensor(inv, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, -self.window:, :].index_select(2, self.index)
        return (x - self.mean) * self.inv_std


class RecurrentCore(nn.Module):
    """LSTM or GRU over the window; the last hidden state feeds a linear logit."""

    def __init__(self, kind: str, n_features: int, hidden: int, layers: int,
                 dropout: float) -> None:
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(n_features, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        logit: torch.Tensor = self.head(self.drop(out[:, -1, :])).squeeze(-1)
        return logit


class TCNCore(nn.Module):
    """Causal dilated 1-D convolutions (kernel 3, dilation 1, 2, 4, ...) with residuals."""

    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_features, hidden, 1)
        self.dilations = [2**i for i in range(layers)]
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, dilation=d) for d in self.dilations)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.transpose(1, 2))
        for conv, dilation in zip(self.convs, self.dilations, strict=True):
            h = h + self.drop(F.relu(conv(F.pad(h, (2 * dilation, 0)))))
        logit: torch.Tensor = self.head(h[:, :, -1]).squeeze(-1)
        return logit


class MLPCore(nn.Module):
    """A feed-forward network over the flattened window."""

    def __init__(self, n_features: int, window: int, hidden: int, layers: int,
                 dropout: float) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features * window
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit: torch.Tensor = self.net(x.flatten(1)).squeeze(-1)
        return logit


def build_core(variant: VariantSettings, n_features: int) -> nn.Module:
    """The trainable network of ``variant``: normalised ``[B, W, F]`` -> logits ``[B]``."""
    if variant.architecture in ("lstm", "gru"):
        return RecurrentCore(variant.architecture, n_features, variant.hidden, variant.layers,
                             variant.dropout)
    if variant.architecture == "tcn":
        return TCNCore(n_features, variant.hidden, variant.layers, variant.dropout)
    return MLPCore(n_features, variant.window, variant.hidden, variant.layers, variant.dropout)


class DirectionModel(nn.Module):
    """What is exported: raw ``features [B, W_max, F_all]`` -> ``probability [B]``."""

    def __init__(self, preprocess: Preprocess, core: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.core = core

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.core(self.preprocess(features)))
