"""A reader protocol on a real socket pair, fed bytes as socket reads would hand them over: how the
parser and fuzz tests drive our ESL and AMI readers without a PBX."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

P = TypeVar("P", bound=asyncio.Protocol)


async def fed(protocol: Callable[[], P], chunks: list[bytes]) -> P:
    """The protocol `protocol` makes, after `chunks` were given to its `data_received` one by one."""
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(protocol, sock=a)
    try:
        for c in chunks:
            proto.data_received(c)
    finally:
        transport.close()
        b.close()
    return proto
