"""ONNX export: the contract's signature and torch/ONNX Runtime parity on real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finmlops.config import VariantSettings
from finmlops.features import feature_names
from finmlops.models.walkforward import Samples


@pytest.mark.parametrize("architecture", ["lstm", "gru", "tcn", "mlp"])
def test_onnx_matches_torch_on_real_windows(architecture: str, samples: Samples,
                                            tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from finmlops.models._modules import DirectionModel, Preprocess, build_core
    from finmlops.models.export import export_onnx

    torch.manual_seed(0)
    v = VariantSettings(architecture=architecture, features="core", window=5, hidden=8,
                        layers=2, dropout=0.2)
    index = [samples.feature_names.index(n) for n in feature_names("core")]
    last = samples.x[:, -1, index].astype(np.float64)
    model = DirectionModel(Preprocess(5, index, last.mean(0), last.std(0)),
                           build_core(v, len(index))).eval()
    path = export_onnx(model, tmp_path / "model.onnx", samples.window, len(samples.feature_names))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("features", "probability")
    assert inp.type == out.type.replace("float", "float") == "tensor(float)"
    assert inp.shape[1:] == [samples.window, len(samples.feature_names)]
    assert isinstance(inp.shape[0], str) and len(out.shape) == 1
    for batch in (samples.x[:1], samples.x[:37], samples.x[-300:]):
        expected = model(torch.from_numpy(batch)).detach().numpy()
        got = session.run(None, {"features": batch})[0]
        assert got.shape == (len(batch),) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)
