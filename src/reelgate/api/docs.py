"""`/docs` (Swagger UI) and `/redoc` (ReDoc) from assets shipped in a Python package (`GET /` leads to the web
console instead: api/console.py).

FastAPI's own pages load their scripts from a CDN, so they are blank on a machine without internet, which is
the embedded deployment's whole point. The fastapi-offline wheel ships Swagger UI's and ReDoc's bundles as
package data; they are served from here with FastAPI's own page builders, so the app stays a plain
`FastAPI` built by `create_app(settings)`. None of these routes is in the OpenAPI document, and their errors
(an unknown asset, a wrong method) get the contract's envelope from the app's handlers like any other route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
# The package and folder holding the bundles; the file names below are those fastapi-offline 1.7 ships.
ASSETS_PACKAGE = ("fastapi_offline", "static")

# The pages may load only what this server serves. ReDoc 2 renders a "Redocly" logo from cdn.redoc.ly that no
# option turns off: with this policy the browser never sends that request (the logo's fallback is its text).
# Inline script and style: FastAPI's page starts the UI inline, and ReDoc styles itself at run time; its search
# runs in a blob: worker.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)

_SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Swagger UI's validator badge sends the document's URL to validator.swagger.io: a request to the outside
    # that an offline machine cannot make and a private deployment should not.
    "validatorUrl": None,
}


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/redoc` and their assets to `app` (built with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_swagger_ui_html(
            openapi_url=root + _openapi_url(app),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # Bearer keys are pasted in "Authorize"; there is no OAuth2 flow to come back from.
            oauth2_redirect_url=None,
            swagger_ui_parameters={**_SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
        return _confined(page)

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_redoc_html(
            openapi_url=root + _openapi_url(app),
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # Google Fonts is a CDN too; ReDoc falls back to the system's fonts.
            with_google_fonts=False,
        )
        return _confined(page)


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def _root(request: Request) -> str:
    # Behind a proxy that mounts the app under a prefix, the pages must point at the prefixed URLs.
    return str(request.scope.get("root_path", "")).rstrip("/")


def _openapi_url(app: FastAPI) -> str:
    if app.openapi_url is None:
        raise RuntimeError("the API docs need the OpenAPI document; the app was built with openapi_url=None")
    return app.openapi_url
