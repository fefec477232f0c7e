"""OpenAPI descriptions of the request bodies.

Handlers parse bodies themselves (a JSON parse and a few field checks) instead of
validating them with pydantic models: the proxy must pass every OpenAI parameter
through untouched, and whole-body validation would cost more than the rest of the
request path. These schemas only document the API (and drive schemathesis).
"""

from __future__ import annotations

from ..models.inprocess import MAX_TOP_LOGPROBS
from ..options import header_parameters, json_schema

__all__ = ["CHAT_REQUEST", "TEXT_REQUEST", "DEMONSTRATIONS_REQUEST", "ERROR_RESPONSES"]

SELFALIGN_OPTIONS = json_schema()

MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": {"type": "string"},
                   "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}},
                                         {"type": "null"}]}},
    "additionalProperties": True,
}

_SUFFIX = "The model may end in @COUNTRY (e.g. gpt-4o-mini@ro) for clients that can only set the model."

TEXT_REQUEST = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "model": {"type": "string"},
            "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                                      "minItems": 1, "maxItems": 1}]},
            "max_tokens": {"type": "integer", "minimum": 0},
            "echo": {"type": "boolean"},
            "logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_TOP_LOGPROBS},
        },
        "additionalProperties": True,
        "description": "An OpenAI (legacy) text completion for an embedded model, not aligned: with echo and "
                       "logprobs it scores the prompt's tokens.",
    }}}},
}

CHAT_REQUEST = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": {"type": "string", "description": _SUFFIX},
            "messages": {"type": "array", "items": MESSAGE},
            "stream": {"type": "boolean"},
            "selfalign": SELFALIGN_OPTIONS,
        },
        "additionalProperties": True,
        "description": "An OpenAI chat completion request; every other parameter is passed through untouched.",
    }}}},
    "parameters": header_parameters(),
}

DEMONSTRATIONS_REQUEST = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "A user message (or give messages)."},
            "messages": {"type": "array", "items": MESSAGE},
            "model": {"type": "string", "description": _SUFFIX},
            "selfalign": SELFALIGN_OPTIONS,
        },
        "additionalProperties": False,
    }}}},
    "parameters": CHAT_REQUEST["parameters"],
}

_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}}}}

ERROR_RESPONSES = {
    400: {"description": "Invalid JSON, fields, country, language or profile", **_ERROR},
    401: {"description": "Missing or wrong API key", **_ERROR},
    413: {"description": "Body over the size limit", **_ERROR},
}
