"""The JSON API the page talks to. No route takes a server path or a model: only uploaded bytes.

The CPU-heavy steps run in worker threads bounded by ``serve.workers``: network inference with
the session's first post-processing (an upload waits for a free worker), and every later
post-processing (a settings change can cost as much as a closing over the whole volume). The cheap
steps (strokes, undo, downloads) run in threads outside that limit; nothing long holds the event
loop. Each session's lock orders the requests that touch it.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as PathLib
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import anyio
import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cardioseg.anatomy import PHASES, VIEWS, parse_view
from cardioseg.app import downloads, ef, review
from cardioseg.app.measure import measurements
from cardioseg.app.segment import ServedModel, segment_file
from cardioseg.app.sessions import Session, SessionStore, Settings, new_id
from cardioseg.app.strokes import Stroke
from cardioseg.app.upload import check_declared, plain_name, receive
from cardioseg.artifacts import PredictionFiles
from cardioseg.config import Config
from cardioseg.viz.palette import class_colour

T = TypeVar("T")
SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
SliceQuery = Annotated[int, Query(ge=0)]


@dataclass
class AppState:
    """What every request needs: the model, the sessions, the inference limit, the settings."""

    model: ServedModel
    store: SessionStore
    inference: anyio.CapacityLimiter
    cfg: Config


def state(request: Request) -> AppState:
    return request.app.state.cardioseg


State = Annotated[AppState, Depends(state)]
router = APIRouter(prefix="/api")


def session_of(app: AppState, session_id: str) -> Session:
    try:
        return app.store.get(session_id)
    except KeyError:
        raise HTTPException(404, "no such session: it was closed or dropped after a long idle time; upload again") from None


async def locked(session: Session, work: Callable[[], T], limiter: anyio.CapacityLimiter | None = None) -> T:
    """Run ``work`` in a thread while holding the session's lock (and a worker of ``limiter``, when given)."""
    async with session.lock:
        return await anyio.to_thread.run_sync(work, limiter=limiter)


def summary(session: Session) -> dict[str, Any]:
    rows, cols = session.plane(session.scan.image, 0).shape
    spacing = session.plane_spacing()
    return {
        "id": session.id, "name": session.name, "format": session.scan.kind.name.lower(),
        "kind": "cine" if session.scan.cine is not None else "volume" if session.depth > 1 else "image",
        "width": cols, "height": rows,
        "slices": session.depth, "initial_slice": session.initial_slice, "spacing": spacing,
        "settings": session.settings.model_dump(), "patient": session.patient, "view": session.view,
        "phase": session.phase,
    }


def slice_payload(session: Session, index: int) -> dict[str, Any]:
    """The slice's mask (base64 uint8, row-major) and the measurements the page shows."""
    mask = session.mask(index)
    return {"slice": index, "width": mask.shape[1], "height": mask.shape[0],
            "mask": base64.b64encode(np.ascontiguousarray(mask).tobytes()).decode("ascii"),
            "measurements": measurements(session, mask), "qc": review.session_qc(session, index),
            "can_undo": bool(session.history)}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/info")
async def info(app: State) -> dict[str, Any]:
    """The served model as the page describes it, the post-processing it starts with, the limits."""
    member = app.model.segmenter.members[0]
    return {
        "model": app.model.name, "architecture": member.model_cfg.arch, "encoder": member.model_cfg.encoder,
        "parameters": member.n_parameters, "binary": app.model.segmenter.binary,
        "classes": [{"label": k, "name": v, "colour": list(class_colour(k))} for k, v in app.model.class_names.items()],
        "settings": Settings.initial(app.cfg.predict.postprocess).model_dump(),
        "max_upload_mb": app.cfg.serve.max_upload_mb, "views": list(VIEWS), "phases": list(PHASES),
    }


@router.post("/sessions")
async def upload(request: Request, app: State, name: Annotated[str | None, Query(max_length=1000)] = None) -> dict[str, Any]:
    """The file is the raw request body; ``name`` is the client's file name, used as a label only."""
    label = plain_name(name)
    limit = app.cfg.serve.max_upload_mb
    check_declared(request.headers.get("content-length"), limit)
    folder = app.store.new_folder()
    try:
        path, kind = await receive(request.stream(), folder, limit)

        def segmented() -> Session:
            scan = segment_file(app.model, path, kind, limit)
            if scan.volume is None:
                path.unlink()
            return Session(new_id(), label, scan, app.model, Settings.initial(app.cfg.predict.postprocess), folder)

        session = await anyio.to_thread.run_sync(segmented, limiter=app.inference)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    session.patient, session.view, session.phase = parse_view(label)
    app.store.add(session)
    return summary(session)


@router.get("/sessions/{session_id}")
async def get_session(session_id: SessionId, app: State) -> dict[str, Any]:
    return summary(session_of(app, session_id))


class Tags(BaseModel):
    """Which patient and apical view an image is, when its file name does not say."""

    model_config = ConfigDict(extra="forbid")

    patient: str | None = Field(None, max_length=100)
    view: str | None = Field(None, pattern="^(2CH|4CH)$")
    phase: str | None = Field(None, pattern="^(ED|ES)$")


@router.patch("/sessions/{session_id}")
async def tag_session(session_id: SessionId, tags: Tags, app: State) -> dict[str, Any]:
    session = session_of(app, session_id)
    session.patient, session.view, session.phase = (tags.patient or "").strip() or None, tags.view, tags.phase
    return summary(session)


@router.delete("/sessions/{session_id}")
async def close_session(session_id: SessionId, app: State) -> dict[str, str]:
    session = session_of(app, session_id)
    async with session.lock:
        app.store.drop(session_id)
    return {"status": "closed"}


@router.get("/sessions/{session_id}/slices/{index}")
async def get_slice(session_id: SessionId, index: int, app: State) -> dict[str, Any]:
    session = session_of(app, session_id)
    return await locked(session, lambda: slice_payload(session, index))


@router.get("/sessions/{session_id}/slices/{index}/image.png")
async def slice_image(session_id: SessionId, index: int, app: State) -> Response:
    session = session_of(app, session_id)
    data = await anyio.to_thread.run_sync(lambda: downloads.encode_png(session.plane(session.scan.image, index)))
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.put("/sessions/{session_id}/settings")
async def set_settings(session_id: SessionId, settings: Settings, app: State, slice: SliceQuery = 0) -> dict[str, Any]:
    """Re-threshold and post-process from the kept probabilities (no inference)."""
    session = session_of(app, session_id)

    def work() -> dict[str, Any]:
        session.apply_settings(settings)
        return slice_payload(session, slice)

    return await locked(session, work, app.inference)


@router.post("/sessions/{session_id}/slices/{index}/strokes")
async def add_stroke(session_id: SessionId, index: int, stroke: Stroke, app: State) -> dict[str, Any]:
    session = session_of(app, session_id)

    def work() -> dict[str, Any]:
        session.paint(index, stroke)
        return slice_payload(session, index)

    payload = await locked(session, work)
    app.store.fit(keep=session.id)  # the stroke's undo step counts in the memory budget
    return payload


@router.post("/sessions/{session_id}/undo")
async def undo(session_id: SessionId, app: State, slice: SliceQuery = 0) -> dict[str, Any]:
    """Revert the last stroke; the answer is the slice it was on."""
    session = session_of(app, session_id)

    def work() -> dict[str, Any]:
        undone = session.undo()
        return slice_payload(session, slice if undone is None else undone)

    return await locked(session, work)


@router.delete("/sessions/{session_id}/edits")
async def clear_edits(session_id: SessionId, app: State, slice: SliceQuery = 0) -> dict[str, Any]:
    session = session_of(app, session_id)

    def work() -> dict[str, Any]:
        session.clear_edits()
        return slice_payload(session, slice)

    return await locked(session, work)


@router.get("/sessions/{session_id}/mask.png")
async def download_png(session_id: SessionId, app: State, slice: SliceQuery = 0) -> Response:
    session = session_of(app, session_id)
    data = await locked(session, lambda: downloads.png_bytes(session, slice))
    suffix = f"_slice{slice:03d}" if session.depth > 1 else ""
    return _attachment(data, "image/png", PredictionFiles(PathLib()).mask(f"{downloads.download_stem(session)}{suffix}").name)


@router.get("/sessions/{session_id}/mask.nii.gz")
async def download_nifti(session_id: SessionId, app: State) -> Response:
    session = session_of(app, session_id)
    data = await locked(session, lambda: downloads.nifti_bytes(session))
    return _attachment(data, "application/gzip", f"{downloads.download_stem(session)}_mask.nii.gz")


def _attachment(data: bytes, media_type: str, filename: str) -> Response:
    """A download named ``filename`` (RFC 6266): an ASCII ``filename``, plus ``filename*`` in UTF-8 when
    the name is not plain ASCII (HTTP headers are Latin-1: a bare "Łukasz" or "患者" cannot go there)."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)
    disposition = f'attachment; filename="{fallback}"'
    if fallback != filename:
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})


class EfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessions: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]] = Field(max_length=200)


@router.post("/ef")
async def ejection_fraction(request: Annotated[EfRequest, Body()], app: State) -> dict[str, Any]:
    """EF per patient over the given sessions (those still open); views from names or tags."""
    sessions = [app.store.sessions[i] for i in request.sessions if i in app.store.sessions]
    return {"patients": await anyio.to_thread.run_sync(lambda: ef.patient_results(sessions))}


@router.get("/sessions/{session_id}/cine")
async def cine_curve(session_id: SessionId, app: State) -> dict[str, Any]:
    """A cine's LV curve, ED/ES frames, EF and QC, from the corrected masks."""
    session = session_of(app, session_id)
    return await locked(session, lambda: review.cine_payload(session))


class Phases(BaseModel):
    """The frames the user takes as end-diastole and end-systole."""

    model_config = ConfigDict(extra="forbid")

    ed: int = Field(ge=0)
    es: int = Field(ge=0)


@router.put("/sessions/{session_id}/cine/phases")
async def move_phases(session_id: SessionId, phases: Phases, app: State) -> dict[str, Any]:
    """Move ED or ES to other frames: the EF follows."""
    session = session_of(app, session_id)
    return await locked(session, lambda: review.set_phases(session, phases.ed, phases.es))
