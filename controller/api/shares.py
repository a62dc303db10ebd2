"""Share links for one recording: created by a user who may listen to it, revocable, expiring.

`/api/v1/recordings/{id}/shares` manages links (bearer token, as every API route). `/share/{token}`
is the public side: a minimal player page, its metadata and its audio (HTTP Range); it reaches only
the one recording the link names, never the API, and answers 410 once the link expired or was
revoked. Only a hash of the token is stored; every use is audited with the remote address.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from controller.api import audio
from controller.api.admin_common import actor, conflict, json_object, versioned, wanted_version
from controller.api.auth import principal, require_right
from controller.api.errors import ApiError, not_found
from controller.api.recordings import open_stored, permissions, visible_recording
from controller.api.scopes import ALL
from controller.api.state import api_state
from storage import recordings_query, shares
from storage.policy_admin import Conflict
from storage.shares import ShareError, ShareGone

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never pass it on
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def _share_error(e: ShareError) -> ApiError:
    return ApiError(422, "invalid", str(e), field=e.field)


async def create_share(request: web.Request) -> web.Response:
    p = principal(request)
    rec = await visible_recording(request)
    perms = permissions(p, rec)
    if not perms["listen"]:
        raise ApiError(
            403, "forbidden", f"you may not listen to this recording, so you cannot share it (listen scope: {p.listen})"
        )
    body = await json_object(request)
    unknown = set(body) - {"expires_in_hours", "allow_download"}
    if unknown:
        key = sorted(unknown)[0]
        raise ApiError(422, "invalid", f"unknown key {key!r} (expected expires_in_hours, allow_download)", field=key)
    allow_download = body.get("allow_download", False)
    if not isinstance(allow_download, bool):
        raise ApiError(422, "invalid", "allow_download: true or false", field="allow_download")
    if allow_download and not perms["download"]:
        raise ApiError(403, "forbidden", "you may not download this recording, so your link cannot allow downloads")
    if rec["state"] != "stored":
        raise ApiError(409, "not_stored", f"the recording is {rec['state']}, not stored yet; nothing to share")
    try:
        share, token = await shares.create(
            api_state(request).pool,
            uuid.UUID(rec["id"]),
            hours=body.get("expires_in_hours"),
            allow_download=allow_download,
            actor=actor(request, p),
        )
    except ShareError as e:
        raise _share_error(e) from None
    return web.json_response({**share.as_dict(), "token": token, "url": f"/share/{token}"}, status=201)


async def list_shares(request: web.Request) -> web.Response:
    """Admins see every link of the recording; others see the links they made."""
    p = principal(request)
    rec = await visible_recording(request)
    if not permissions(p, rec)["listen"] and not p.has("settings"):
        raise ApiError(403, "forbidden", "you may not listen to this recording")
    found = await shares.list_for(
        api_state(request).pool, uuid.UUID(rec["id"]), created_by=None if p.has("settings") else p.name
    )
    return web.json_response({"shares": [s.as_dict() for s in found]})


async def revoke_share(request: web.Request) -> web.Response:
    p = principal(request)
    rec = await visible_recording(request)
    try:
        share_id = int(request.match_info["share_id"])
    except ValueError:
        raise not_found("share") from None
    pool = api_state(request).pool
    share = await shares.get(pool, uuid.UUID(rec["id"]), share_id) if 0 < share_id < 2**62 else None
    if share is None or (not p.has("settings") and share.created_by != p.name):
        raise not_found("share")
    revoked = await shares.revoke(pool, share, actor=actor(request, p))
    return web.json_response(revoked.as_dict())


async def get_limits(request: web.Request) -> web.Response:
    principal(request)  # everyone who may share needs to know the limits
    return versioned(await shares.get_limits(api_state(request).pool))


async def put_limits(request: web.Request) -> web.Response:
    p = require_right(request, "settings")
    body = await json_object(request)
    version = wanted_version(request, body)
    try:
        view = await shares.put_limits(api_state(request).pool, body, version=version, actor=actor(request, p))
    except ShareError as e:
        raise _share_error(e) from None
    except Conflict as e:
        raise conflict(e) from None
    return versioned(view)


# --- the public side: /share/{token} --------------------------------------------------------------


def _gone_page(status: int, text: str) -> web.Response:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>callrec · shared recording</title><link rel="stylesheet" href="/static/app.css"></head>'
        '<body><main><section class="card share-card"><h1>Shared recording</h1>'
        f'<p class="error" id="share-gone">{text}</p></section></main></body></html>'
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=PAGE_HEADERS)


_GONE_TEXT = {
    "revoked": "This link was revoked by the person who shared it.",
    "expired": "This link has expired.",
}


async def _use(request: web.Request, action: str | None) -> shares.Share:
    try:
        share = await shares.use(
            api_state(request).pool,
            request.match_info["token"],
            action=action,
            remote=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
    except ShareGone as e:
        raise ApiError(410, "gone", _GONE_TEXT.get(e.status, "This link is no longer valid."), link=e.status) from None
    if share is None:
        raise ApiError(404, "not_found", "no such link")
    return share


async def share_page(request: web.Request) -> web.StreamResponse:
    try:
        await _use(request, "open")
    except ApiError as e:
        return _gone_page(e.status, e.message)
    return web.FileResponse(STATIC_DIR / "share.html", headers=PAGE_HEADERS)


async def _recording(request: web.Request, share: shares.Share) -> dict[str, Any]:
    rec = await recordings_query.get(api_state(request).pool, uuid.UUID(share.recording_id), ALL)
    if rec is None:  # purged since the link was made
        raise ApiError(410, "gone", "The recording is no longer kept.", link="purged")
    return rec


async def share_info(request: web.Request) -> web.Response:
    """Just enough for the player: when, how long, until when the link works, whether it downloads."""
    share = await _use(request, None)
    rec = await _recording(request, share)
    return web.json_response(
        {
            "started_at": rec["started_at"],
            "duration_ms": rec["duration_ms"],
            "direction": rec["direction"],
            "shared_by": share.created_by,
            "expires_at": share.expires_at.isoformat(),
            "allow_download": share.allow_download,
        },
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def share_audio(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("download")
    if raw not in (None, "0", "1", "true", "false"):
        raise ApiError(400, "invalid_parameter", f"download: 1 or 0, got {raw!r}", field="download")
    download = raw in ("1", "true")
    share = await _use(request, None)
    if download and not share.allow_download:
        raise ApiError(403, "forbidden", "this link is for listening only")
    rec = await _recording(request, share)
    wav = await open_stored(request, rec)
    try:
        await _use(request, "download" if download else "listen")
        return await audio.serve_wav(
            request, wav, filename=f"recording-{rec['started_at'][:10]}.wav", download=download
        )
    finally:
        await wav.aclose()
