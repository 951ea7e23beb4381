"""The web console at `/console` (docs/console.md), and `GET /` -> `/console`.

The console is static files (`reelgate/console/static`: ES modules, CSS, one HTML shell) that call the public
API from the browser, so everything it shows can be done with the API; this router only serves them. Every
page path under `/console` answers the same shell (the console routes in the browser, so a reload or a shared
link of `/console/tasks/<id>` works), and `/console/assets/...` the files themselves.

Headers: a strict Content-Security-Policy (no inline script or style, no eval, nothing from elsewhere except
the result links' own origin where they are not this server's), no framing, no referrer (a signed video link
must not leak to another site), and `no-store` on the shell so nothing a browser keeps outlives the tab. The
key itself lives in the tab's sessionStorage only; these answers never carry it.
"""

from __future__ import annotations

from importlib import resources as package_files
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from reelgate.config import Settings

CONSOLE_URL = "/console"
ASSETS_URL = "/console/assets"
ASSETS_PACKAGE = ("reelgate.console", "static")
_SHELL = "index.html"
# Behind a proxy that mounts the app under a root path, the shell's URLs (its files, its links) are rewritten to
# the prefixed ones and the root is handed to the scripts here (a <base> element would need `base-uri`, which
# the policy denies).
_SHELL_PREFIX = 'data-root="" '


def content_security_policy(settings: Settings) -> str:
    """Only this server, plus the origins result links point at when they are not this server: the public
    URL's (REELGATE_PUBLIC_URL behind a proxy) and, with presigned links, the object store's."""
    media = ["'self'", "blob:"]
    for origin in _link_origins(settings):
        if origin not in media:
            media.append(origin)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(media)} data:",
            f"media-src {' '.join(media)}",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def _link_origins(settings: Settings) -> list[str]:
    origins = [_origin(settings.public_url)]
    if settings.storage_location.bucket and settings.resolved_result_links == "presigned":
        # Without an endpoint the links are AWS's own (virtual-hosted or regional names).
        origins.append(_origin(settings.s3_endpoint_url) if settings.s3_endpoint_url else "https://*.amazonaws.com")
    return [origin for origin in origins if origin]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


class ConsoleAssets(StaticFiles):
    """The console's files with its headers. `no-cache`: a browser revalidates (ETag) so an upgrade of the
    server is picked up at the next load; none of them holds a key."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(packages=[ASSETS_PACKAGE])
        self.extra_headers = headers

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.extra_headers)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_console(app: FastAPI, settings: Settings) -> None:
    """Add `/console`, its page paths, its assets and the `/` redirect to `app`. None is in the OpenAPI
    document (they are not the API), and their errors get the contract's envelope like any other route."""
    headers = security_headers(settings)
    shell = package_files.files(ASSETS_PACKAGE[0]).joinpath(ASSETS_PACKAGE[1], _SHELL).read_text(encoding="utf-8")
    app.mount(ASSETS_URL, ConsoleAssets(headers), name="console-assets")

    def page(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        body = shell
        if root:
            prefix = _attribute(root)
            body = body.replace(_SHELL_PREFIX, f'data-root="{prefix}" ')
            for url in (CONSOLE_URL, "/docs"):
                body = body.replace(f'="{url}', f'="{prefix}{url}')
        return HTMLResponse(body, headers={**headers, "Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.scope.get("root_path", "")).rstrip("/") + CONSOLE_URL, status_code=307)

    @app.get(CONSOLE_URL, include_in_schema=False)
    async def console_home(request: Request) -> HTMLResponse:
        return page(request)

    @app.get(CONSOLE_URL + "/{route:path}", include_in_schema=False)
    async def console_page(request: Request, route: str) -> HTMLResponse:
        return page(request)


def _attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
