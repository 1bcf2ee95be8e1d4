"""The web app for reviewing and correcting segmentations: ``create_app`` builds it for uvicorn.

Everything the page needs is served from this package (``static/``): no CDN, and a Content
Security Policy that lets the page load nothing from elsewhere. Errors reach the page as JSON
``{"detail": ...}``: 400 for a bad file or request, 413 for an upload over the limit, 404 for an
unknown session. Messages name the problem, never a path on the server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cardioseg.app.api import AppState, router
from cardioseg.app.segment import load_model
from cardioseg.app.sessions import SessionStore
from cardioseg.app.upload import UploadTooLarge
from cardioseg.config import Config
from cardioseg.errors import CardiosegError

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(model_path: str | Path, cfg: Config | None = None) -> FastAPI:
    """The app serving ``model_path``; uploads and their sessions live in a scratch folder removed at exit."""
    cfg = cfg or Config()
    scratch = tempfile.TemporaryDirectory(prefix="cardioseg-serve-")
    root = Path(scratch.name)
    model = load_model(Path(model_path), cfg, root)
    app = FastAPI(title="cardioseg", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.scratch = scratch  # the folder lives as long as the app
    app.state.cardioseg = AppState(model, SessionStore(root / "sessions"), anyio.CapacityLimiter(cfg.serve.workers), cfg)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, exc: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": exc.problem}, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(CardiosegError)
    async def bad_input(_: Request, exc: CardiosegError) -> JSONResponse:
        return JSONResponse({"detail": exc.problem}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=400)
