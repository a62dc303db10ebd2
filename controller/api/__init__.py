"""Supervisor status API and web page (aiohttp)."""

from controller.api.app import create_app, start_api

__all__ = ["create_app", "start_api"]
