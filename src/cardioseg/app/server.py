"""The web app for reviewing and correcting segmentations: ``create_app`` builds it for uvicorn.

Everything the page needs is served from this package (``static/``): no CDN, and a Content
Security Policy that lets the page load nothing from elsewhere. Errors reach the page as JSON
``{"detail": ...}``: 400 for a bad file or request or an unknown Host, 403 for a request that may
be cross-site, 404 for an unknown session, 408 for a stalled upload, 413 for an upload over the
limit. Messages name the problem, never a path on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cardioseg.app.api import AppState, router
from cardioseg.app.guard import HostPolicy, csrf_problem
from cardioseg.app.messages import without_paths
from cardioseg.app.scratch import create_scratch
from cardioseg.app.segment import load_model
from cardioseg.app.sessions import SessionStore
from cardioseg.app.upload import UploadStalled, UploadTooLarge
from cardioseg.config import Config
from cardioseg.errors import CardiosegError
from cardioseg.postprocess import with_planned_postprocess

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(model_path: str | Path, cfg: Config | None = None) -> FastAPI:
    """The app serving ``model_path``; uploads and their sessions live in a scratch folder removed at shutdown.

    The server's shutdown (uvicorn's answer to SIGTERM and SIGINT, or the end of a test client)
    removes the folder; ``create_scratch`` removes those of servers that died without one.
    """
    cfg = cfg or Config()
    scratch = create_scratch()
    root = Path(scratch.name)
    try:
        model = load_model(Path(model_path), cfg, root)
        cfg = with_planned_postprocess(cfg, model.segmenter.plan)
    except BaseException:
        scratch.cleanup()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            scratch.cleanup()

    app = FastAPI(title="cardioseg", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.scratch = scratch  # the folder lives as long as the app
    app.state.cardioseg = AppState(model, SessionStore(root / "sessions"), anyio.CapacityLimiter(cfg.serve.workers), cfg)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app, root)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    hosts = HostPolicy(cfg.serve)

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host_problem = hosts.problem(request.headers.get("host"))
        if host_problem is not None:
            return JSONResponse({"detail": host_problem}, status_code=400)
        cross_site = csrf_problem(request.method, dict(request.headers), request.url.scheme)
        if cross_site is not None:
            return JSONResponse({"detail": cross_site}, status_code=403)
        return await call_next(request)

    @app.middleware("http")  # the outer one: its headers go on every answer, refusals included
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return app


def _add_error_handlers(app: FastAPI, scratch: Path) -> None:
    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, exc: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": exc.problem}, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(UploadStalled)
    async def stalled(_: Request, exc: UploadStalled) -> JSONResponse:
        return JSONResponse({"detail": exc.problem}, status_code=408, headers={"Connection": "close"})

    @app.exception_handler(CardiosegError)
    async def bad_input(_: Request, exc: CardiosegError) -> JSONResponse:
        return JSONResponse({"detail": without_paths(exc.problem, scratch)}, status_code=400)

    @app.exception_handler(Exception)
    async def failure(_: Request, exc: Exception) -> JSONResponse:
        """A bug, not bad input: the page gets JSON it can show (the server still logs the traceback)."""
        return JSONResponse({"detail": "internal error in the app (the server log has the details)"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=400)
