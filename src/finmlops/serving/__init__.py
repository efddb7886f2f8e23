"""The inference service: Open Inference Protocol V2 over ONNX Runtime, an A/B experiment
router, shadow scoring, and the experiment ledger's commit-before-answer path."""

from finmlops.serving.dataplane import DataPlane
from finmlops.serving.factory import create_app
from finmlops.serving.rest import RestApp
from finmlops.serving.results import InferResult, Target
from finmlops.serving.router import Choice, Router, key_point, parse_route
from finmlops.serving.runtime import LoadedModel, discover, load_model, load_models
from finmlops.serving.server import ServerHandle, run_in_thread

__all__ = [
    "Choice",
    "DataPlane",
    "InferResult",
    "LoadedModel",
    "RestApp",
    "Router",
    "ServerHandle",
    "Target",
    "create_app",
    "discover",
    "key_point",
    "load_model",
    "load_models",
    "parse_route",
    "run_in_thread",
]
