"""Each service's interactive API documentation, served from the service itself: Swagger UI
at /docs and ReDoc at /redoc, their assets shipped in this package (no CDN), so that the
documentation works where the service runs without a network."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "docs_assets"
ASSETS_PATH = "/docs/assets"


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name as a verb phrase in camelCase
    (`submit_request` → `submitRequest`): what a generated client calls the method."""
    first, *rest = route.name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


def serve_docs(app: FastAPI) -> None:
    """Swagger UI and ReDoc over the app's own OpenAPI document. The app must be created
    with `docs_url=None, redoc_url=None` (FastAPI's own pages load their assets from a CDN)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            redoc_js_url=f"{ASSETS_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
