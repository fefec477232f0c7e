"""The web inspector at ``/``: one static page that shows what the proxy injects and why.

The page (``index.html``, ``inspector.js``, ``inspector.css`` beside this file) is shipped in the
package and served as it is: no build step, nothing fetched from elsewhere, so it works offline.
It calls the proxy's own endpoints with the user's key in an ``Authorization`` header, so it is
held to the same auth and Host/Origin guard as any client; the page itself holds no data and is
served without a key. ``--no-ui`` (config ``ui: false``) leaves the page out (404).

:func:`install` also adds ``GET /v1/selfalign/options`` (:mod:`.choices`), which any client may read.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .choices import option_choices

if TYPE_CHECKING:
    from ..handlers import Proxy

__all__ = ["install", "ASSETS", "SECURITY_HEADERS"]

# Path -> (file beside this module, media type). A fixed table: no request path ever reaches the file system.
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/inspector/inspector.js": ("inspector.js", "text/javascript; charset=utf-8"),
          "/inspector/inspector.css": ("inspector.css", "text/css; charset=utf-8")}

# Only the page's own files may run or style it, and it may talk only to this proxy: even if data
# were ever put into the page as markup, an inline handler (onerror=...) would not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI, proxy: "Proxy") -> None:
    """Add the options listing, and the page unless the config turns it off."""

    @app.get("/v1/selfalign/options", summary="The values each alignment option may take",
             response_class=Response, responses={401: {"description": "Missing or wrong API key"}})
    async def options(request: Request) -> Response:
        proxy.authorize(request)
        return Response(option_choices(proxy), media_type="application/json")

    if not proxy.config.ui:
        return
    package = files(__name__)
    for path, (name, media_type) in ASSETS.items():
        body = package.joinpath(name).read_bytes()  # read at start-up: a missing file fails there, not per request
        app.add_api_route(path, _static(body, media_type), methods=["GET"], include_in_schema=False)


def _static(body: bytes, media_type: str) -> Any:
    async def asset() -> Response:
        return Response(body, media_type=media_type, headers=SECURITY_HEADERS)
    return asset
