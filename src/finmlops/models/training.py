"""The training loop: full-batch tensors indexed directly (no DataLoader), time-ordered early
stopping on a validation tail, best epoch kept, deterministic for a seed."""

from __future__ import annotations

import hashlib
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


@dataclass
class FitResult:
    state: dict[str, Any]
    """The best epoch's weights (a detached copy of the core's state dict)."""
    best_epoch: int
    """0 means no epoch beat the starting weights (kept as they were)."""
    epochs: int
    best_val_loss: float
    train_losses: list[float] = field(default_factory=list)
    """Mean training loss of each epoch run, epoch 1 first (for the tracking run's curves)."""
    val_losses: list[float] = field(default_factory=list)
    """Validation loss after each epoch run."""


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


def fit(core: nn.Module, x_fit: FloatArray, y_fit: npt.ArrayLike, x_val: FloatArray,
        y_val: npt.ArrayLike, variant: VariantSettings, *, seed: int,
        patience: int | None = None) -> FitResult:
    """Train ``core`` in place with AdamW on binary cross-entropy; keep the epoch with the
    lowest validation loss (the starting weights count as epoch 0, so a warm start that does
    not improve is kept unchanged) and stop after ``patience`` epochs without improvement."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    xf, yf = torch.from_numpy(np.ascontiguousarray(x_fit)), torch.as_tensor(
        np.asarray(y_fit, dtype=np.float32))
    xv, yv = torch.from_numpy(np.ascontiguousarray(x_val)), torch.as_tensor(
        np.asarray(y_val, dtype=np.float32))
    eval_batch = max(variant.batch_size, 4096)
    opt = torch.optim.AdamW(core.parameters(), lr=variant.learning_rate,
                            weight_decay=variant.weight_decay)
    best_loss = _loss(core, xv, yv, eval_batch)
    best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
    best_epoch, epoch = 0, 0
    n = xf.shape[0]
    wait = variant.patience if patience is None else patience
    train_losses: list[float] = []
    val_losses: list[float] = []
    for epoch in range(1, variant.epochs + 1):
        core.train()
        perm = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for i in range(0, n, variant.batch_size):
            idx = perm[i:i + variant.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(core(xf[idx]), yf[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += loss.detach() * idx.numel()
        val = _loss(core, xv, yv, eval_batch)
        train_losses.append(float(total) / max(n, 1))
        val_losses.append(val)
        if val < best_loss - 1e-6:
            best_loss, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
        elif epoch - best_epoch >= wait:
            break
    core.load_state_dict(best_state)
    core.eval()
    return FitResult(state=best_state, best_epoch=best_epoch, epochs=epoch,
                     best_val_loss=best_loss, train_losses=train_losses, val_losses=val_losses)


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
