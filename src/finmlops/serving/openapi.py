"""The service's OpenAPI 3.1 document, derived from the loaded models and the experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finmlops.serving.protocol import MAX_FEEDBACK, MAX_ID, MAX_RETURN, MIN_RETURN

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_ID_PATTERN = rf"^[\x20-\x7e]{{1,{MAX_ID}}}$"
_ID = {"type": "string", "pattern": _ID_PATTERN,
       "description": "The client's id, printable ASCII (kept beside the prediction; the "
                      "ledger's key is the service-issued prediction_id)"}
_KEY = {"type": "string", "maxLength": MAX_ID, "description": "Printable; \"TICKER:YYYY-MM-DD\""}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Missing or wrong bearer token",
            403: "A token of another scope", 404: "Unknown model or version",
            405: "Method not allowed", 409: "Conflicts with a recorded outcome; nothing applied",
            415: "Unsupported Content-Encoding (gzip, deflate and identity are accepted)",
            413: "Body too large", 500: "Server configuration error",
            503: "Not ready, or the ledger cannot take the write (nothing recorded)",
            504: "Request timed out"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def build_openapi(models: Sequence[str], experiment: str, versions: Sequence[str],
                  window: int | None, n_features: int | None, auth: bool,
                  input_name: str = "features", version: str = "0.1.0") -> dict[str, Any]:
    """Every route with request/response schemas (precise enough for schemathesis)."""
    names: dict[str, Any] = {"type": "string", "minLength": 1}
    if models:
        names = {"type": "string", "enum": sorted({*models, experiment})}
    ver: dict[str, Any] = {"type": "string", "minLength": 1}
    if versions:
        ver = {"type": "string", "enum": sorted(set(versions))}
    dim = {"type": "integer", "minimum": 1, "maximum": 1024}
    shape: dict[str, Any] = {"type": "array", "minItems": 3, "maxItems": 3, "items": dim}
    if window and n_features:
        shape["prefixItems"] = [dim, {"const": window}, {"const": n_features}]
    tensor_in = {
        "type": "object", "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string", "const": input_name},
            "datatype": {"type": "string", "enum": ["FP32", "FP64"]},
            "shape": shape,
            "data": {"type": "array", "minItems": 1,
                     "items": {"type": "number"}},
            "parameters": {"type": "object"},
        },
    }
    infer_req = {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": _ID,
            "parameters": {"type": "object", "properties": {"routing_key": _KEY}},
            "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": tensor_in},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    }
    tensor_out = {
        "type": "object", "required": ["name", "datatype", "shape", "data"],
        "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                       "shape": {"type": "array", "items": {"type": "integer"}},
                       "data": {"type": "array", "items": {"type": "number"}}},
    }
    infer_resp = {
        "type": "object", "required": ["model_name", "model_version", "id", "outputs",
                                       "parameters"],
        "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object",
                           "required": ["arm", "prediction_id", "assignment"],
                           "properties": {"arm": {"type": "string"},
                                          "prediction_id": {"type": "string"},
                                          "assignment": {"type": "string", "enum": [
                                              "hash", "random", "pinned", "direct"]},
                                          "experiment": {"type": "string"},
                                          "experiment_version": {"type": "integer"}}},
            "outputs": {"type": "array", "items": tensor_out},
        },
    }
    meta_tensor = {"type": "object", "required": ["name", "datatype", "shape"],
                   "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                                  "shape": {"type": "array", "items": {"type": "integer"}}}}
    model_meta = {
        "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {"name": {"type": "string"},
                       "versions": {"type": "array", "items": {"type": "string"}},
                       "platform": {"type": "string"},
                       "inputs": {"type": "array", "items": meta_tensor},
                       "outputs": {"type": "array", "items": meta_tensor},
                       "parameters": {"type": "object"}},
    }
    model_ready = {"type": "object", "required": ["name", "ready"],
                   "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}}
    candidate = {"type": "object", "required": ["name", "weight"], "additionalProperties": False,
                 "properties": {"name": {"type": "string"},
                                "weight": {"type": "integer", "minimum": 0}}}
    experiment_doc = {
        "type": "object", "required": ["name", "candidates"],
        "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                       "default": {"type": ["string", "null"]},
                       "candidates": {"type": "array", "items": candidate},
                       "mirror": {"type": ["object", "null"]}, "shadow": {"type": "boolean"}},
    }
    def outcome_by(address: str) -> dict[str, Any]:
        return {"type": "object", "required": [address, "realized_return"],
                "additionalProperties": False,
                "properties": {address: {"type": "string", "minLength": 1},
                               "realized_return": {"type": "number", "minimum": MIN_RETURN,
                                                   "maximum": MAX_RETURN},
                               "direction": {"type": "integer", "enum": [0, 1]}}}

    # By prediction id, or by routing key ("TICKER:YYYY-MM-DD": every prediction under it).
    by_id, by_key = outcome_by("prediction_id"), outcome_by("routing_key")
    feedback_req = {"oneOf": [
        by_id, by_key,
        {"type": "object", "required": ["outcomes"], "additionalProperties": False,
         "properties": {"outcomes": {"type": "array", "minItems": 1, "maxItems": MAX_FEEDBACK,
                                     "items": {"oneOf": [by_id, by_key]}}}},
    ]}
    feedback_resp = {"type": "object", "required": ["accepted", "duplicates", "unknown"],
                     "properties": {"accepted": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                    "unknown": {"type": "array", "items": {"type": "string"}}}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}] if auth else []
    guarded = _errors(401, 403) if auth else {}
    p_name = {"name": "name", "in": "path", "required": True, "schema": names}
    p_ver = {"name": "version", "in": "path", "required": True, "schema": ver}
    h_rid = {"name": "x-request-id", "in": "header", "required": False, "schema": _ID}
    h_key = {"name": "x-routing-key", "in": "header", "required": False, "schema": _KEY}
    h_route = {"name": "x-seldon-route", "in": "header", "required": False,
               "schema": {"type": "string"}}

    def get(summary: str, ok: dict[str, Any], *codes: int, params: list[Any] | None = None,
            open_: bool = False) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "parameters": params or [],
                              "responses": {"200": ok, **_errors(*codes),
                                            **({} if open_ else guarded)}}
        if not open_:
            op["security"] = secured
        return {"get": op}

    def infer_op(params: list[Any]) -> dict[str, Any]:
        return {"post": {
            "summary": "Score a batch; the experiment routes it to one arm",
            "parameters": [*params, h_rid, h_key, h_route],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": infer_req}}},
            "responses": {"200": _json(infer_resp, "Probabilities from the arm that served"),
                          **_errors(400, 404, 413, 503, 504), **guarded},
            "security": secured,
        }}

    paths: dict[str, Any] = {
        "/v2/health/live": get("Liveness", _json(
            {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
            "Alive"), open_=True),
        "/v2/health/ready": get("Readiness (models loaded, experiment version known, ledger "
                                "taking writes)", _json(
            {"type": "object", "required": ["ready"],
             "properties": {"ready": {"type": "boolean"}}}, "Ready"), 503, open_=True),
        "/v2": get("Server metadata", _json(
            {"type": "object", "required": ["name", "version", "extensions"],
             "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                            "extensions": {"type": "array", "items": {"type": "string"}}}},
            "Server metadata")),
        "/v2/models/{name}": get("Model metadata", _json(model_meta, "Model metadata"),
                                 404, 503, params=[p_name]),
        "/v2/models/{name}/ready": get("Model readiness", _json(model_ready, "Ready"),
                                       404, 503, params=[p_name]),
        "/v2/models/{name}/versions/{version}": get(
            "Model version metadata", _json(model_meta, "Model metadata"), 404, 503,
            params=[p_name, p_ver]),
        "/v2/models/{name}/versions/{version}/ready": get(
            "Model version readiness", _json(model_ready, "Ready"), 404, 503,
            params=[p_name, p_ver]),
        "/v2/models/{name}/infer": infer_op([p_name]),
        "/v2/models/{name}/versions/{version}/infer": infer_op([p_name, p_ver]),
        "/v2/feedback": {"post": {
            "summary": "Realised outcomes by prediction id or routing key (recorded once)",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": feedback_req}}},
            "responses": {"200": _json(feedback_resp, "Counts of predictions; unknown ids "
                                                      "and keys listed"),
                          **_errors(400, 409, 413, 503, 504), **guarded},
            "security": secured,
        }},
        "/admin/experiment": {
            "get": get("Current experiment", _json(experiment_doc, "The experiment"), 503)["get"],
            "put": {
                "summary": "Change the arms' weights: a new experiment version, in force on "
                           "every replica",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["candidates"], "additionalProperties": False,
                    "properties": {"candidates": {"type": "array", "minItems": 1,
                                                  "items": candidate}}}}}},
                "responses": {"200": _json(experiment_doc, "The new experiment"),
                              **_errors(400, 413, 503, 504), **guarded},
                "security": secured,
            },
        },
        "/v2/repository/index": {"post": {
            "summary": "Every model and the experiment, with their state (model repository "
                       "extension)",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {"ready": {"type": "boolean"},
                               "repository_name": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "array", "items": {
                "type": "object", "required": ["name", "version", "state", "reason"],
                "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                               "state": {"type": "string"}, "reason": {"type": "string"}}}},
                "Models"), **_errors(400, 413, 503, 504), **guarded},
            "security": secured,
        }},
        "/admin/status": get("Why the service is or is not ready", _json(
            {"type": "object", "required": ["ready"]}, "Status")),
        "/admin/reload": {"post": {
            "summary": "Re-read the configuration's experiment section",
            "responses": {"200": _json(experiment_doc, "The reloaded experiment"),
                          **_errors(400, 500, 503, 504), **guarded},
            "security": secured,
        }},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            "200": _json({"type": "object"}, "OpenAPI document")}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "finmlops inference service (Open Inference Protocol V2)",
                 "version": version},
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR}},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
