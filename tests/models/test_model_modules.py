"""The variant networks and the in-graph preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from finmlops.config import VariantSettings


@pytest.mark.parametrize("architecture", ["lstm", "gru", "tcn", "mlp"])
def test_every_architecture_maps_windows_to_one_logit(architecture: str) -> None:
    import torch

    from finmlops.models._modules import build_core

    v = VariantSettings(architecture=architecture, window=6, hidden=8, layers=2, dropout=0.1)
    core = build_core(v, 4).eval()
    out = core(torch.randn(7, 6, 4))
    assert out.shape == (7,)
    assert torch.isfinite(out).all()


def test_tcn_is_causal_within_the_window() -> None:
    import torch

    from finmlops.models._modules import build_core

    core = build_core(VariantSettings(architecture="tcn", window=8, hidden=8, layers=3), 3).eval()
    x = torch.randn(1, 8, 3)
    y = x.clone()
    y[:, 0, :] += 10.0  # the oldest day: within the receptive field, so it may matter
    z = x.clone()
    assert torch.equal(core(x), core(z))
    assert not torch.equal(core(x), core(y))


def test_preprocess_slices_the_trailing_window_subset_and_normalises() -> None:
    import torch

    from finmlops.models._modules import Preprocess

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 10, 6)).astype(np.float32)
    mean = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    std = np.array([2.0, 0.5, 1.0], dtype=np.float32)
    pre = Preprocess(4, [5, 0, 2], mean, std)
    got = pre(torch.from_numpy(x)).numpy()
    expected = (x[:, -4:, :][:, :, [5, 0, 2]] - mean) / std
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert set(pre.state_dict()) == {"index", "mean", "inv_std"}
