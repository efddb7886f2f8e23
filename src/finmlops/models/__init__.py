"""PyTorch model variants, the walk-forward training loop and ONNX export."""

from finmlops.models.result import TrainedVariant

__all__ = ["TrainedVariant"]
