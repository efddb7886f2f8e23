"""The training loop: which epoch is kept, fixed-epoch refits, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from finmlops.config import VariantSettings

V = VariantSettings(architecture="mlp", window=3, hidden=8, epochs=6, patience=2, batch_size=32,
                    learning_rate=1e-2)


def _core(seed: int = 0) -> Any:
    import torch

    from finmlops.models._modules import build_core

    torch.manual_seed(seed)
    return build_core(V, 4)


def _weights(core: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in core.state_dict().items()}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def _data(val_label: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every fitted row is up; every validation row is ``val_label``."""
    x = np.random.default_rng(0).normal(size=(300, 3, 4)).astype(np.float32)
    return x[:240], np.ones(240), x[240:], np.full(60, val_label)


def test_a_fresh_fit_keeps_a_trained_epoch_even_when_none_improves() -> None:
    from finmlops.models.training import fit

    # Learning "always up" only worsens a validation slice that is all down.
    x_fit, y_fit, x_val, y_val = _data(0.0)
    core = _core()
    start = _weights(core)
    r = fit(core, x_fit, y_fit, x_val, y_val, V, seed=1)
    assert r.best_epoch >= 1 and not r.improved
    assert r.best_val_loss > r.start_val_loss
    assert not _same(_weights(core), start)  # the untrained weights were not kept
    assert _same(_weights(core), {k: v.numpy() for k, v in r.state.items()})


def test_a_warm_start_that_never_improves_keeps_its_starting_weights() -> None:
    from finmlops.models.training import fit

    x_fit, y_fit, x_val, y_val = _data(0.0)
    core = _core()
    start = _weights(core)
    r = fit(core, x_fit, y_fit, x_val, y_val, V, seed=1, warm_start=True, patience=2)
    assert r.best_epoch == 0 and not r.improved and r.epochs == 2
    assert r.best_val_loss == r.start_val_loss
    assert _same(_weights(core), start)


def test_a_fit_that_helps_validation_reports_improvement() -> None:
    from finmlops.models.training import fit

    x_fit, y_fit, x_val, y_val = _data(1.0)
    for warm in (False, True):
        r = fit(_core(), x_fit, y_fit, x_val, y_val, V, seed=1, warm_start=warm)
        assert r.improved and r.best_epoch >= 1
        assert r.best_val_loss < r.start_val_loss


def test_fit_epochs_trains_exactly_that_long_deterministically() -> None:
    from finmlops.models.training import fit_epochs

    x, y, _, _ = _data(1.0)
    one = _weights(_core()) | {}
    a, losses = fit_epochs(_core(), x, y, V, seed=3, epochs=2)
    b, _ = fit_epochs(_core(), x, y, V, seed=3, epochs=2)
    c, _ = fit_epochs(_core(), x, y, V, seed=3, epochs=1)
    d, _ = fit_epochs(_core(), x[:-1], y[:-1], V, seed=3, epochs=2)  # every row counts
    assert len(losses) == 2 and all(v > 0 for v in losses)
    as_np = {k: {n: t.numpy() for n, t in s.items()} for k, s in
             {"a": a, "b": b, "c": c, "d": d}.items()}
    assert _same(as_np["a"], as_np["b"])
    assert not _same(as_np["a"], as_np["c"])
    assert not _same(as_np["a"], as_np["d"])
    assert not _same(as_np["c"], one)
    with pytest.raises(ValueError, match="at least 1"):
        fit_epochs(_core(), x, y, V, seed=3, epochs=0)
