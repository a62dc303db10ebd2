"""FreeSWITCH driver: the Event Socket on the service's own asyncio loop, translated into normalized
events.

The socket is read on the loop (controller.drivers.esl_protocol): an event is
translated and offered to the recorder in the same callback that read it, and the command the recorder
decides (`uuid_record … start`) is written to the socket there and then — no thread between the PBX's
bridge event and our command. The driver translates and never decides (controller.drivers.
freeswitch_translate). Recording commands use `api`, not `bgapi`, so each reply is the command's own
result, matched to it by order.

The connection is supervised: wrong password, refused connection, a socket closed mid-frame and a PBX
that stops reading each give one log line and a retry with capped exponential backoff; after every
(re)connect a `LinkUp` and a `Resync` (from `show channels as json` + `show calls as json`) are emitted
so the recorder can adopt or close recordings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime

from controller.drivers.base import PbxCommandError, PbxUnavailable, RecordingRequest, SpoolFiles, StartInDoubt
from controller.drivers.esl_protocol import EslLinkLost, EslProtocol, connect, decode_event_plain
from controller.drivers.freeswitch_translate import (
    RECORDING_ID_VAR,
    SUBSCRIBED,
    Translator,
    live_channels_from,
    parse_show_json,
)
from controller.events import AnyEvent, LinkDown, LinkUp, LiveChannel, Resync
from controller.tones import TONES, Tone

__all__ = ["SUBSCRIBED", "FreeSwitchDriver", "Translator", "decode_event_plain"]

log = logging.getLogger("callrec.freeswitch")
_DAY_FOLDER = os.path.join("%Y", "%m", "%d")  # spool/YYYY/MM/DD/<recording id>.wav


class FreeSwitchDriver:
    """A PbxDriver for one FreeSWITCH node (see controller.drivers.base.PbxDriver)."""

    kind = "freeswitch"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        password: str,
        *,
        record_dir: str,
        spool_dir: str = "",
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        command_timeout: float = 10.0,
        on_link: Callable[[bool], None] | None = None,
    ) -> None:
        self.name = name
        self.host, self.port, self._password = host, port, password
        self.record_dir = record_dir  # the spool as FreeSWITCH sees it (a shared mount may differ)
        self.spool_dir = spool_dir or record_dir  # the same directory as the controller sees it
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.command_timeout = command_timeout
        self.on_link = on_link
        self._translate = Translator(name)
        self._pending: deque[AnyEvent] = deque()  # translated, not yet taken by the sink or events()
        self._ready = asyncio.Event()
        self._sink: Callable[[AnyEvent], bool] | None = None
        self._task: asyncio.Task[None] | None = None  # the supervisor: connect, serve, reconnect
        self._proto: EslProtocol | None = None
        self._running = False
        self._connected = False
        self.connects = 0  # successful (re)connects, for tests and metrics
        self._folders: set[str] = set()  # spool day folders made already

    # ---- lifecycle ----
    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._running = True
        self._task = asyncio.create_task(self._supervise(), name=f"esl-{self.name}")

    async def close(self) -> None:
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its end, not its CancelledError (a caller's own cancel still raises)
        self._connected = False

    def set_sink(self, sink: Callable[[AnyEvent], bool] | None) -> None:
        """A consumer that takes events at once, in the callback that read them off the socket (the
        recorder's `offer`), instead of one loop iteration later through `events()`; offered in
        order, stopping at the first refusal (the rest go through `events()`)."""
        self._sink = sink

    def _wake(self) -> None:
        """Hand what was translated to the sink, or wake `events()`."""
        sink, pending = self._sink, self._pending
        if sink is not None:
            while pending:
                if not sink(pending[0]):
                    break
                pending.popleft()
        if pending:
            self._ready.set()

    async def events(self) -> AsyncIterator[AnyEvent]:
        pending, ready = self._pending, self._ready
        while True:
            while pending:
                yield pending.popleft()
            ready.clear()
            if not pending:  # checked after clear(): an event appended meanwhile has set it again
                await ready.wait()

    def drop_link(self) -> None:
        """Cut the socket (tests, and a stuck link); the supervisor reconnects."""
        if self._proto is not None:
            self._proto.abort("connection dropped by the controller")

    # ---- commands ----
    async def api(self, command: str) -> str:
        return await self.api_reply(command, self.api_begin(command))

    def api_begin(self, command: str) -> asyncio.Future[str]:
        """Write `api <command>` to the socket NOW; the future gets the reply body. Raises
        PbxUnavailable at once when there is no link to write to."""
        proto = self._proto
        if not self._connected or proto is None:
            raise PbxUnavailable(f"{self.name}: not connected to FreeSWITCH")
        try:
            return self._write(proto, "api " + command)
        except EslLinkLost as e:  # the link is going down
            raise PbxUnavailable(f"{self.name}: api {command.split(' ', 1)[0]} failed: {e}") from e

    async def api_reply(self, command: str, fut: asyncio.Future[str]) -> str:
        """The reply to a command `api_begin` wrote; -ERR / -USAGE raise PbxCommandError."""
        try:
            reply = await asyncio.wait_for(fut, self.command_timeout + 1)
        except EslLinkLost as e:
            raise PbxUnavailable(f"{self.name}: api {command.split(' ', 1)[0]}: {e}") from e
        if reply.startswith("-ERR") or reply.startswith("-USAGE"):
            raise PbxCommandError(f"{self.name}: api {command.split(' ', 1)[0]}: {reply.strip()}")
        return reply

    def pbx_path(self, path: str) -> str:
        """A spool path as the controller sees it → the same file as FreeSWITCH sees it."""
        rel = os.path.relpath(path, self.spool_dir)
        if rel.startswith(os.pardir) or self.record_dir == self.spool_dir:
            return path
        return os.path.join(self.record_dir, rel)

    async def start_recording(self, req: RecordingRequest) -> SpoolFiles:
        return await self.begin_recording(req)

    def begin_recording(self, req: RecordingRequest) -> Awaitable[SpoolFiles]:
        """Write `uuid_record … start` NOW (the recorder calls this in the same step as the bridge
        event that decided it); the awaitable gives the files once FreeSWITCH has answered, or raises
        (never this call itself). Journal and finalize see `path` under the controller's spool;
        FreeSWITCH gets its own view."""
        base = req.spool_dir or self.spool_dir
        if req.files is not None and req.files.stereo:
            # a repeat after the link died mid-start: the same path, which FreeSWITCH records once per
            # channel ("Already recording", ../shared/fixtures/freeswitch/NOTES.md), so never twice
            path = req.files.stereo
            rel = path.removeprefix(base.rstrip(os.sep) + os.sep)
        else:
            d = datetime.now(UTC)
            rel = os.path.join(d.strftime(_DAY_FOLDER), f"{req.recording_id}.wav")
            path = os.path.join(base, rel)
        folder = os.path.dirname(path)
        if folder not in self._folders:  # one mkdir per day, not one stat per call
            try:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            except OSError:
                pass  # the PBX may see the spool on another host; it creates the directories itself
        pbx_path = os.path.join(self.record_dir, rel) if self.record_dir else path
        tags = {RECORDING_ID_VAR: req.recording_id, "callrec_call_id": req.call_id, **req.tags}
        # Customer leg's READ stream (its far end = the customer) is LEFT with RECORD_STEREO (fixtures).
        vars_ = ",".join([f"{k}={v}" for k, v in tags.items()] + ["RECORD_STEREO=true", "record_sample_rate=8000"])
        command = f"uuid_record {req.customer_leg} start {pbx_path} 0 {{{vars_}}}"
        files = SpoolFiles(stereo=path)
        try:
            fut: asyncio.Future[str] | None = self.api_begin(command)
            error: PbxUnavailable | None = None
        except PbxUnavailable as e:
            fut, error = None, e
        return self._started(command, fut, error, files)

    async def _started(
        self, command: str, fut: asyncio.Future[str] | None, error: PbxUnavailable | None, files: SpoolFiles
    ) -> SpoolFiles:
        try:
            if error is not None:
                raise error
            assert fut is not None
            await self.api_reply(command, fut)
        except PbxUnavailable as e:
            proto = self._proto
            if proto is None or not proto.is_open:  # the link died: a reconnect and resync will follow
                raise StartInDoubt(str(e), files) from e
            raise
        return files

    async def pause_recording(self, leg: str, files: SpoolFiles) -> None:
        await self.api(f"uuid_record {leg} mask {self.pbx_path(files.stereo or '')}")

    async def resume_recording(self, leg: str, files: SpoolFiles) -> None:
        await self.api(f"uuid_record {leg} unmask {self.pbx_path(files.stereo or '')}")

    async def stop_recording(self, leg: str, files: SpoolFiles) -> None:
        await self.api(f"uuid_record {leg} stop {self.pbx_path(files.stereo or '')}")

    async def play_tone(self, leg: str, tone: Tone) -> None:
        """Play `tone` to `leg` only (`aleg` = the named leg, not its bridge partner): an agent's
        confirmation never reaches the customer, nor the recording on the customer's leg."""
        await self.api(f"uuid_broadcast {leg} {tone.freeswitch()} aleg")

    async def play_prompt(self, leg: str, prompt: str) -> None:
        """The announcement prompt (a path or URL FreeSWITCH's playback takes) to `leg` only."""
        await self.api(f"uuid_broadcast {leg} {prompt} aleg")

    async def feature_reply(self, leg: str, accepted: bool) -> None:
        """The answer to a feature code: the hook's bind_meta_app only fired the event, the tone is ours."""
        await self.play_tone(leg, TONES["confirm" if accepted else "refuse"])

    async def live_channels(self) -> list[LiveChannel]:
        channels = parse_show_json(await self.api("show channels as json"))
        calls = parse_show_json(await self.api("show calls as json"))
        return live_channels_from(channels, calls)

    # ---- the link ----
    def _write(self, proto: EslProtocol, data: str) -> asyncio.Future[str]:
        """Every command goes out here (the bench's latency probe stamps it)."""
        return proto.send(data)

    async def _send(self, proto: EslProtocol, data: str) -> str:
        """A command of the supervisor's own (subscription, resync listing), waiting for its reply."""
        return await asyncio.wait_for(self._write(proto, data), self.command_timeout)

    def _post(self, *items: AnyEvent) -> None:
        """Queue translated events in order and hand them to the sink (or wake `events()`)."""
        self._pending.extend(items)
        self._wake()

    def _on_event(self, headers: Mapping[str, str]) -> None:
        """One ESL event, on the loop as it is read: translated, then offered to the sink at once."""
        if "Event-Name" not in headers:
            return
        try:
            out = self._translate(headers)
        except Exception:
            log.exception("%s: cannot translate %s event", self.name, headers.get("Event-Name"))
            return
        if out:
            self._post(*out)

    async def _supervise(self) -> None:
        backoff = self.backoff_initial
        while self._running:
            proto: EslProtocol | None = None
            up = False
            reason = "shutdown"
            try:
                proto = await connect(self.host, self.port, self._password, self._on_event)
                # LinkUp goes out BEFORE the subscription, so every event of this link follows it in
                # the queue (the recorder tells legs learned on this link from stale ones by it).
                self._post(LinkUp(self.name, time.monotonic(), time.time()))
                up = True
                reply = await self._send(proto, "event plain " + SUBSCRIBED)
                if not reply.startswith("+OK"):
                    raise ConnectionError(f"event subscription refused: {reply}")
                self._proto, self._connected = proto, True
                self.connects += 1
                backoff = self.backoff_initial
                log.info("%s: connected to FreeSWITCH ESL at %s:%s", self.name, self.host, self.port)
                if self.on_link:
                    self.on_link(True)
                channels = parse_show_json(await self._send(proto, "api show channels as json"))
                calls = parse_show_json(await self._send(proto, "api show calls as json"))
                self._post(
                    Resync(
                        self.name, time.monotonic(), time.time(), channels=tuple(live_channels_from(channels, calls))
                    )
                )
                reason = await asyncio.shield(proto.closed)
                if self._running:
                    log.warning("%s: ESL link lost: %s; reconnecting", self.name, reason)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if isinstance(e, EslLinkLost) and proto is not None:
                    reason = proto.reason or reason
                if self._running:
                    log.warning(
                        "%s: cannot use FreeSWITCH ESL at %s:%s: %s; retrying in %.1fs",
                        self.name,
                        self.host,
                        self.port,
                        reason,
                        backoff,
                    )
            finally:
                self._connected = False
                self._proto = None
                if proto is not None:
                    proto.abort()
                if up:
                    self._post(LinkDown(self.name, time.monotonic(), time.time(), reason=reason))
                    if self.on_link:
                        self.on_link(False)
            if not self._running:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)
