"""The training loop: full-batch tensors indexed directly (no DataLoader), time-ordered early
stopping on a validation tail with the best epoch kept (:func:`fit`), or a fixed number of
epochs on every row (:func:`fit_epochs`); deterministic for a seed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from finmlops.config.settings import VariantSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

FloatArray = npt.NDArray[np.float32]


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch and make its kernels deterministic, on ``threads`` CPU threads."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


MIN_DELTA = 1e-6
"""A validation loss must fall by more than this to count as an improvement."""


@dataclass
class FitResult:
    state: dict[str, Any]
    """The best epoch's weights (a detached copy of the core's state dict)."""
    best_epoch: int
    """The epoch whose weights were kept: >= 1 for a fresh fit; 0 only for a warm start that
    no epoch improved on (its starting weights are kept unchanged)."""
    epochs: int
    """Epochs run (early stopping may end before ``variant.epochs``)."""
    best_val_loss: float
    start_val_loss: float
    """Validation loss of the starting weights (random for a fresh fit, the previous fold's
    for a warm start)."""
    train_losses: list[float] = field(default_factory=list)
    """Mean training loss of each epoch run, epoch 1 first (for the tracking run's curves)."""
    val_losses: list[float] = field(default_factory=list)
    """Validation loss after each epoch run."""

    @property
    def improved(self) -> bool:
        """Whether any epoch beat the starting weights on the validation loss."""
        return self.best_val_loss < self.start_val_loss - MIN_DELTA


def _loss(core: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    import torch

    core.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits = core(x[i:i + batch])
            total += float(torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y[i:i + batch], reduction="sum"))
    return total / max(x.shape[0], 1)


def _tensors(x: FloatArray, y: npt.ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return (torch.from_numpy(np.ascontiguousarray(x)),
            torch.as_tensor(np.asarray(y, dtype=np.float32)))


class _Epochs:
    """AdamW on binary cross-entropy over shuffled mini-batches, one epoch per call."""

    def __init__(self, core: nn.Module, x: FloatArray, y: npt.ArrayLike,
                 variant: VariantSettings, seed: int) -> None:
        import torch

        self.core, self.batch = core, variant.batch_size
        self.x, self.y = _tensors(x, y)
        self.gen = torch.Generator().manual_seed(seed)
        self.opt = torch.optim.AdamW(core.parameters(), lr=variant.learning_rate,
                                     weight_decay=variant.weight_decay)

    def run(self) -> float:
        """One epoch; returns its mean training loss."""
        import torch

        self.core.train()
        n = self.x.shape[0]
        perm = torch.randperm(n, generator=self.gen)
        total = torch.zeros(())
        for i in range(0, n, self.batch):
            idx = perm[i:i + self.batch]
            self.opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.core(self.x[idx]), self.y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            self.opt.step()
            total += loss.detach() * idx.numel()
        return float(total) / max(n, 1)


def _snapshot(core: nn.Module) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in core.state_dict().items()}


def fit(core: nn.Module, x_fit: FloatArray, y_fit: npt.ArrayLike, x_val: FloatArray,
        y_val: npt.ArrayLike, variant: VariantSettings, *, seed: int,
        patience: int | None = None, warm_start: bool = False) -> FitResult:
    """Train ``core`` in place; keep the epoch with the lowest validation loss and stop after
    ``patience`` epochs without improvement.

    A fresh fit (``warm_start=False``) always keeps a trained epoch (best epoch >= 1), even
    when none beats the random starting weights: untrained weights are never a model. A warm
    start counts its starting weights as epoch 0, so a fine-tune that does not improve keeps
    them unchanged. Either way :attr:`FitResult.improved` says whether validation improved.
    """
    xv, yv = _tensors(x_val, y_val)
    eval_batch = max(variant.batch_size, 4096)
    epochs = _Epochs(core, x_fit, y_fit, variant, seed)
    start_loss = _loss(core, xv, yv, eval_batch)
    best_loss = start_loss if warm_start else math.inf
    best_state = _snapshot(core)
    best_epoch, epoch = 0, 0
    wait = variant.patience if patience is None else patience
    train_losses: list[float] = []
    val_losses: list[float] = []
    for epoch in range(1, variant.epochs + 1):
        epochs.run()
        val = _loss(core, xv, yv, eval_batch)
        if val < best_loss - MIN_DELTA:
            best_loss, best_epoch = val, epoch
            best_state = _snapshot(core)
        elif epoch - best_epoch >= wait:
            break
    core.load_state_dict(best_state)
    core.eval()
    return FitResult(state=best_state, best_epoch=best_epoch, epochs=epoch,
                     best_val_loss=best_loss, start_val_loss=start_loss,
                     train_losses=train_losses, val_losses=val_losses)


def fit_epochs(core: nn.Module, x: FloatArray, y: npt.ArrayLike, variant: VariantSettings,
               *, seed: int, epochs: int) -> tuple[dict[str, Any], list[float]]:
    """Train ``core`` in place on every row for exactly ``epochs`` epochs (no validation
    slice held out); returns the final weights and each epoch's mean training loss."""
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    loop = _Epochs(core, x, y, variant, seed)
    losses = [loop.run() for _ in range(epochs)]
    core.eval()
    return _snapshot(core), losses


def predict(core: nn.Module, x: FloatArray, batch: int = 8192) -> npt.NDArray[np.float64]:
    """P(up) of normalised windows ``x``."""
    import torch

    core.eval()
    out: list[npt.NDArray[np.float64]] = []
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x))
        for i in range(0, xt.shape[0], batch):
            out.append(torch.sigmoid(core(xt[i:i + batch])).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def weights_hash(state: Mapping[str, Any]) -> str:
    """sha256 over the state dict's tensors in key order (name, dtype, shape and bytes)."""
    h = hashlib.sha256()
    for key in state:
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()
