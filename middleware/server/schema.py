"""OpenAPI descriptions of the request bodies.

Handlers parse bodies themselves (a JSON parse and a few field checks) instead of
validating them with pydantic models: the proxy must pass every OpenAI parameter
through untouched, and whole-body validation would cost more than the rest of the
request path. These schemas only document the API (and drive schemathesis).
"""

from __future__ import annotations

__all__ = ["CHAT_REQUEST", "DEMONSTRATIONS_REQUEST", "ERROR_RESPONSES"]

SELFALIGN_OPTIONS = {
    "type": "object",
    "description": "Per-request alignment choices (OpenAI SDK: extra_body={'selfalign': {...}}); "
                   "removed before the request is forwarded.",
    "properties": {
        "country": {"type": "string", "description": "ISO code or English name; 'none' turns injection off.",
                    "examples": ["ro", "USA", "none"]},
        "language": {"type": "string", "description": "Probe language, e.g. en."},
        "k": {"type": "integer", "minimum": 1, "maximum": 100},
        "strategy": {"type": "string", "examples": ["chrf", "chrf-category", "random", "random-category"]},
        "profile": {"type": "string", "description": "A profile registered at start-up (never a path)."},
    },
    "additionalProperties": False,
}

MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": {"type": "string"},
                   "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}},
                                         {"type": "null"}]}},
    "additionalProperties": True,
}

_SUFFIX = "The model may end in @COUNTRY (e.g. gpt-4o-mini@ro) for clients that can only set the model."

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
    "parameters": [
        {"name": "X-SelfAlign-Country", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "X-SelfAlign-Language", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "X-SelfAlign-Profile", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
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
