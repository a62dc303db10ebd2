"""What every handler reaches through the application: collaborators and small shared state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from controller.api.auth_cache import AuthCache
from controller.api.live_index import LiveIndex
from controller.config import Config
from controller.live import LiveCallSource
from controller.metrics import Metrics


@dataclass
class ApiState:
    config: Config
    pool: asyncpg.Pool
    live: LiveCallSource | None
    metrics: Metrics
    health_checks: Mapping[str, Callable[[], Any]]
    audio: Callable[[Mapping[str, Any]], Any]
    manifest_verifier: Callable[[Mapping[str, Any]], Any] | None
    openapi: dict[str, Any]
    live_index: LiveIndex | None = None
    auth_cache: AuthCache | None = None
    state_counts_at: float = -1e9
    sse_tasks: set[asyncio.Task[Any]] = field(default_factory=set)


STATE = web.AppKey("callrec_api", ApiState)


def api_state(request: web.Request) -> ApiState:
    return request.app[STATE]
