"""PyTorch model variants, the walk-forward training loop, ONNX export and the trained-variant
directory every later stage reads."""

from finmlops.contracts import TrainedVariant
from finmlops.models.stored import is_stored, load_variant, write_variant

__all__ = ["TrainedVariant", "is_stored", "load_variant", "write_variant"]
