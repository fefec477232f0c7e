"""``/docs``: the API reference as one self-contained HTML page, built from the OpenAPI schema.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI / ReDoc scripts from a CDN, unpinned, and run
them with this origin's rights (a same-origin page may call the proxy). This page loads nothing: no
script, no outside style or font (a Content-Security-Policy says so to the browser), so it works offline
and cannot be changed by anyone but the proxy. ``/openapi.json`` stays for tools.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

__all__ = ["router", "render", "CSP"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

_STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "code{background:#f3f3f3;padding:0 .25rem}h2{margin-top:2rem;font-size:1.1rem}"
          "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}"
          ".m{font-weight:bold;font-family:monospace}")


def render(spec: dict) -> str:
    """The HTML page for an OpenAPI ``spec``."""
    info = spec.get("info", {})
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(str(info.get('title', 'API')))}"
             f"</title><style>{_STYLE}</style><h1>{escape(str(info.get('title', '')))} "
             f"{escape(str(info.get('version', '')))}</h1><p>{escape(str(info.get('description', '')))}</p>"
             "<p>Machine-readable: <a href=openapi.json><code>/openapi.json</code></a>.</p>"]
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            parts.append(f"<h2><span class=m>{escape(method.upper())}</span> <code>{escape(path)}</code></h2>"
                         f"<p>{escape(str(op.get('summary', '')))}</p>")
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                parts.append(_fields(body))
            responses = op.get("responses") or {}
            if responses:
                rows = "".join(f"<tr><td>{escape(str(code))}</td><td>{escape(str(r.get('description', '')))}</td></tr>"
                               for code, r in responses.items())
                parts.append(f"<table><tr><th>Status</th><th>Meaning</th></tr>{rows}</table>")
    return "".join(parts)


def _fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    if not props:
        return ""
    rows = "".join(f"<tr><td><code>{escape(name)}</code></td><td>{escape(_type(p))}</td>"
                   f"<td>{escape(str(p.get('description', '')))}</td></tr>" for name, p in props.items())
    note = f"<p>{escape(schema['description'])}</p>" if schema.get("description") else ""
    return f"{note}<table><tr><th>Field</th><th>Type</th><th>Notes</th></tr>{rows}</table>"


def _type(p: dict) -> str:
    if "type" in p:
        return str(p["type"])
    return " | ".join(_type(a) for a in p.get("anyOf", [])) or "object"


router = APIRouter()


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(render(request.app.openapi()), headers={"Content-Security-Policy": CSP,
                                                                "X-Content-Type-Options": "nosniff"})
