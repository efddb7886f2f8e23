"""The inference service: Open Inference Protocol V2 over ONNX Runtime, an A/B experiment
router, shadow scoring, the prediction log and feedback."""

from finmlops.serving.app import ServingApp
from finmlops.serving.factory import create_app
from finmlops.serving.log import Feedback, FeedbackResult, PredictionLog, Served
from finmlops.serving.outcomes import Policy
from finmlops.serving.router import Router, key_point, parse_route
from finmlops.serving.runtime import LoadedModel, discover, load_model, load_models
from finmlops.serving.server import ServerHandle, run_in_thread

__all__ = [
    "Feedback",
    "FeedbackResult",
    "LoadedModel",
    "Policy",
    "PredictionLog",
    "Router",
    "Served",
    "ServerHandle",
    "ServingApp",
    "create_app",
    "discover",
    "key_point",
    "load_model",
    "load_models",
    "parse_route",
    "run_in_thread",
]
