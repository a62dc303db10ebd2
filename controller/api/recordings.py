"""Recordings: search, detail, audio (listen / download), waveform.

A recording outside the caller's scope answers exactly like a missing one (404), so ids cannot be
probed. Listening and downloading are separate permissions; each use is written to the audit log
before the first byte leaves.
"""

from __future__ import annotations

import inspect
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controller.api import audio
from controller.api.auth import principal
from controller.api.errors import ApiError, not_found
from controller.api.state import api_state
from controller.permissions import Principal, Scope
from storage import audit, recordings_query
from storage.recordings_query import DIRECTIONS, STATES, BadCursor, SearchFilter

MAX_LIMIT = 500


def param_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name}: expected an ISO 8601 time, got {raw!r}", field=name
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _param_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise ApiError(400, "invalid_parameter", f"{name}: one of {', '.join(choices)}, got {raw!r}", field=name)
    return raw


def param_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name}: a whole number from {low} to {high}", field=name)
    return value


def permissions(p: Principal, rec: dict[str, Any]) -> dict[str, bool]:
    groups, agents = rec.get("ring_groups") or [], rec.get("agents") or []
    return {"listen": p.listen.covers(groups, agents), "download": p.download.covers(groups, agents)}


async def search(request: web.Request) -> web.Response:
    p = principal(request)
    pool = api_state(request).pool
    f = SearchFilter(
        start=param_time(request, "from"),
        end=param_time(request, "to"),
        numbers=await recordings_query.number_filter(pool, request.query.get("number", "")),
        agent=request.query.get("agent") or None,
        direction=_param_choice(request, "direction", DIRECTIONS),
        state=_param_choice(request, "state", STATES),
        account=request.query.get("account") or None,
    )
    limit = param_int(request, "limit", 50, 1, MAX_LIMIT)
    try:
        rows, nxt = await recordings_query.search(
            pool, f, p.view, cursor=request.query.get("cursor") or None, limit=limit
        )
    except BadCursor as e:
        raise ApiError(400, "invalid_parameter", f"cursor: {e}", field="cursor") from None
    for r in rows:
        r["permissions"] = permissions(p, r)
    return web.json_response({"recordings": rows, "next_cursor": nxt})


def _rec_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["rec_id"])
    except ValueError:
        raise not_found("recording") from None


async def _visible(request: web.Request, scope: Scope | None = None) -> dict[str, Any]:
    p = principal(request)
    rec = await recordings_query.get(api_state(request).pool, _rec_id(request), scope or p.view)
    if rec is None:
        raise not_found("recording")
    return rec


async def detail(request: web.Request) -> web.Response:
    p = principal(request)
    rec = await _visible(request)
    rec["events"] = await recordings_query.events(api_state(request).pool, uuid.UUID(rec["id"]))
    rec["permissions"] = permissions(p, rec)
    rec["manifest_verification"] = await _verify(request, rec)
    if not p.has("settings"):  # storage layout is for administrators
        rec.pop("object_uri", None)
    return web.json_response(rec)


async def _verify(request: web.Request, rec: dict[str, Any]) -> dict[str, Any]:
    verifier = api_state(request).manifest_verifier
    if rec["state"] != "stored":
        return {"status": "not_stored"}
    if not rec.get("manifest"):
        return {"status": "no_manifest", "reason": "the stored row carries no signed manifest"}
    if verifier is None:
        return {"status": "not_checked", "reason": "no verification key configured"}
    try:
        result = verifier(rec)
        if inspect.isawaitable(result):
            result = await result
    except Exception as e:
        return {"status": "error", "reason": f"{e.__class__.__name__}: {e}"}
    return dict(result) if isinstance(result, dict) else {"status": "valid" if result else "invalid"}


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw in (None, "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ApiError(400, "invalid_parameter", f"{name}: 1 or 0, got {raw!r}", field=name)


async def _open_stored(request: web.Request, rec: dict[str, Any]) -> audio.WavStream:
    if rec["state"] != "stored":
        raise ApiError(409, "not_stored", f"the recording is {rec['state']}, not stored yet; nothing to play")
    opener: audio.AudioOpener = api_state(request).audio
    return await audio.WavStream(opener(rec)).open()


async def audio_stream(request: web.Request) -> web.StreamResponse:
    p = principal(request)
    download = _bool_param(request, "download")
    rec = await _visible(request)
    perm = "download" if download else "listen"
    if not permissions(p, rec)[perm]:
        raise ApiError(
            403,
            "forbidden",
            f"you may not {perm} this recording ({perm} scope: {p.download if download else p.listen})",
        )
    wav = await _open_stored(request, rec)
    try:
        await audit.record(
            api_state(request).pool,
            actor=f"user:{p.name}",
            action=f"recording.{perm}",
            target=f"recording:{rec['id']}",
            remote=request.remote or "",
            detail={"range": request.headers.get("Range", ""), "method": request.method},
        )
        return await audio.serve_wav(request, wav, filename=f"{rec['id']}.wav", download=download)
    finally:
        await wav.aclose()


async def waveform(request: web.Request) -> web.Response:
    """Peaks per lane (customer left, agent right) for the player; needs listen permission."""
    p = principal(request)
    buckets = param_int(request, "buckets", 800, 10, 4000)
    rec = await _visible(request)
    if not permissions(p, rec)["listen"]:
        raise ApiError(403, "forbidden", f"you may not listen to this recording (listen scope: {p.listen})")
    wav = await _open_stored(request, rec)
    try:
        return web.json_response(await audio.peaks(wav, buckets))
    finally:
        await wav.aclose()


# For the share-link routes (controller.api.shares), which act on one recording the same way.
visible_recording = _visible
open_stored = _open_stored
