"""FreeSWITCH driver: ESL through `greenswitch`, translated into normalized events.

greenswitch is a gevent library. It runs in ONE dedicated thread with its own gevent hub (gevent hubs
are per thread) and nothing is monkey-patched, so the asyncio service is untouched: events come out in
order through a thread-safe deque that wakes the loop once per burst (one self-pipe write per event
was the driver's largest cost under load), replies with `loop.call_soon_threadsafe`.

Commands from asyncio are written to the socket BY THE ASYNCIO THREAD, at once (`api_begin`): the
reply waiter is queued in greenswitch's reply list and the bytes written under one lock shared with
the hub's own writers, so replies still match commands in order. Handing the write to the hub
thread instead (`run_callback_threadsafe`) cost a second thread switch per command, and under load
that switch waited for the GIL up to the 5 ms switch interval — the bulk of the recording-start
latency (issue #15). A write that would block (the PBX not reading) waits on the fd with `select`,
bounded by the command timeout.

The driver translates and never decides (see `translate`). Recording commands use `api` (greenswitch
merges an event body into its last header, which would garble `bgapi` results). The connection is
supervised: wrong password, refused connection and a socket closed mid-frame each give one log line
and a retry with capped exponential backoff; after every (re)connect a `LinkUp` and a `Resync`
(from `show channels as json` + `show calls as json`) are emitted so the recorder can adopt or close
recordings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from controller.drivers.base import PbxCommandError, PbxUnavailable, RecordingRequest, SpoolFiles, StartInDoubt
from controller.events import (
    AnyEvent,
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    FeatureCode,
    HoldChanged,
    LinkDown,
    LinkUp,
    LiveChannel,
    PolicyHint,
    RecordingStarted,
    RecordingStopped,
    Resync,
    TransferKind,
    Transferred,
    Unbridged,
)
from controller.tones import TONES, Tone

log = logging.getLogger("callrec.freeswitch")

SUBSCRIBED = (
    "CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE "
    "CHANNEL_HOLD CHANNEL_UNHOLD RECORD_START RECORD_STOP CUSTOM callrec::policy callrec::feature "
    "conference::maintenance"
)
VARIABLES_KEPT = (
    "dialed_user",
    "presence_id",
    "sip_hangup_disposition",
    "direction",
    "transfer_history",
    "endpoint_disposition",
)
RECORDING_ID_VAR = "callrec_recording_id"


# ---- translation (pure) -------------------------------------------------------------------------


def _user(value: str) -> str:
    """`2001@127.0.0.1` / `sip:9001@host` → `2001` / `9001`."""
    v = value.split(":", 1)[1] if value.startswith(("sip:", "sips:")) else value
    return v.split("@", 1)[0]


def _variables(h: dict[str, str], *, hooks: bool = False) -> dict[str, str]:
    """The variables we keep; `hooks` adds every callrec_* one (a scan of all ~150 headers, so only
    for CHANNEL_CREATE, the one event whose hook variables the state machine reads)."""
    out = {k[9:]: v for k, v in h.items() if k.startswith("variable_callrec_")} if hooks else {}
    for name in VARIABLES_KEPT:
        if h.get("variable_" + name):
            out[name] = h["variable_" + name]
    if "presence_id" in out and "dialed_user" not in out and h.get("Call-Direction") == "outbound":
        out["dialed_user"] = _user(out["presence_id"])
    return out


class Translator:
    """ESL event headers → normalized events. Holds only what translation needs (which transfer
    history entries were already reported), never call state or policy."""

    def __init__(self, pbx: str) -> None:
        self.pbx = pbx
        self._seen_history: dict[str, str] = {}
        self._conferences: dict[str, list[str]] = {}  # conference name → member legs, in joining order

    def __call__(self, h: dict[str, str], ts: float | None = None, wall: float | None = None) -> list[AnyEvent]:
        ts = time.monotonic() if ts is None else ts
        wall = time.time() if wall is None else wall
        name = h.get("Event-Name", "")
        uid = h.get("Unique-ID", "")
        p = self.pbx
        if name == "CHANNEL_CREATE":
            originator = h.get("variable_originating_leg_uuid") or (
                h.get("Other-Leg-Unique-ID") if h.get("Other-Type") == "originator" else None
            )
            return [
                ChannelCreated(
                    p,
                    ts,
                    wall,
                    leg=uid,
                    call_id=h.get("Channel-Call-UUID", uid),
                    caller=h.get("Caller-Caller-ID-Number", ""),
                    callee=h.get("Caller-Destination-Number", ""),
                    context=h.get("Caller-Context", ""),
                    channel_name=h.get("Channel-Name", ""),
                    originator=originator or None,
                    pbx_direction=h.get("Call-Direction", ""),
                    variables=_variables(h, hooks=True),
                )
            ]
        if name == "CHANNEL_ANSWER":
            return [ChannelAnswered(p, ts, wall, leg=uid, variables=_variables(h))]
        if name in ("CHANNEL_HOLD", "CHANNEL_UNHOLD"):
            # on the leg facing the phone that put its call on hold (S4: the agent leg after uuid_hold)
            return [HoldChanged(p, ts, wall, leg=uid, held=name == "CHANNEL_HOLD")]
        if name == "CUSTOM" and h.get("Event-Subclass") == "callrec::policy":
            values: dict[str, str] = {}
            for k, v in h.items():
                key = k[9:] if k.startswith("variable_") else k
                if key.startswith("callrec_") and v:
                    values[key[8:]] = v
            return [PolicyHint(p, ts, wall, leg=uid, values=values)]
        if name == "CUSTOM" and h.get("Event-Subclass") == "conference::maintenance":
            return self._conference(h, ts, wall)
        if name == "CUSTOM" and h.get("Event-Subclass") == "callrec::feature":
            # fired by the hook's bind_meta_app on the leg whose phone dialled the code
            return [FeatureCode(p, ts, wall, leg=uid, code=h.get("callrec_feature", ""))]
        if name == "CHANNEL_BRIDGE":
            a, b = h.get("Bridge-A-Unique-ID", uid), h.get("Bridge-B-Unique-ID", h.get("Other-Leg-Unique-ID", ""))
            out: list[AnyEvent] = []
            hist = self._new_history(a, h.get("variable_transfer_history", ""))
            if hist and ("att_xfer" in hist or "uuid_br" in hist):
                out.append(Transferred(p, ts, wall, leg=a, kind=TransferKind.ATTENDED))
            number_b = h.get("Other-Leg-Destination-Number", "") if h.get("Other-Leg-Unique-ID") == b else ""
            out.append(Bridged(p, ts, wall, leg_a=a, leg_b=b, number_b=number_b))
            return out
        if name == "CHANNEL_UNBRIDGE":
            a, b = h.get("Bridge-A-Unique-ID", uid), h.get("Bridge-B-Unique-ID", "")
            out = []
            raw = h.get("variable_transfer_history", "")
            # only a blind transfer is reported at the unbridge; a uuid_bridge (warm transfer completed
            # by a CTI client, real capture S4) stays new for the bridge that follows, which says so
            hist = self._new_history(a, raw) if "bl_xfer" in raw.rsplit("|:", 1)[-1] else ""
            if hist and "bl_xfer" in hist:
                dest = hist.rsplit("bl_xfer:", 1)[1]
                # `<exten>/<context>/<dialplan>`; an INLINE dialplan's "exten" is applications
                # (`bridge:loopback/…`), not a number: nothing names the target until the leg dials
                named = "" if dest.endswith("/inline") else dest.split("/", 1)[0]
                target = _user(h.get("variable_sip_refer_to", "")) or named
                out.append(Transferred(p, ts, wall, leg=a, kind=TransferKind.BLIND, target=target, transferer=b))
            # the leg the event is about already hangs up (its A leg's own hangup): the call ends here
            ending = uid if h.get("Answer-State") == "hangup" else ""
            out.append(Unbridged(p, ts, wall, leg_a=a, leg_b=b, hanging_up=ending))
            return out
        if name == "CHANNEL_HANGUP_COMPLETE":
            out = []
            disp = h.get("variable_endpoint_disposition", "")
            xfer_to = h.get("variable_transfer_to", "")
            if disp == "BLIND_TRANSFER" and xfer_to.startswith("blind:"):
                target = h.get("variable_transfer_destination", "").removeprefix("blind:")
                out.append(
                    Transferred(p, ts, wall, leg=xfer_to[6:], kind=TransferKind.BLIND, target=target, transferer=uid)
                )
            elif xfer_to.startswith("att:") and h.get("Other-Leg-Unique-ID"):
                out.append(
                    Transferred(p, ts, wall, leg=h["Other-Leg-Unique-ID"], kind=TransferKind.ATTENDED, transferer=uid)
                )
            self._seen_history.pop(uid, None)
            out.append(ChannelHungUp(p, ts, wall, leg=uid, cause=h.get("Hangup-Cause", ""), variables=_variables(h)))
            return out
        if name == "RECORD_START":
            rid = h.get("Recording-Variable-" + RECORDING_ID_VAR) or h.get("variable_" + RECORDING_ID_VAR, "")
            return [RecordingStarted(p, ts, wall, leg=uid, path=h.get("Record-File-Path", ""), recording_id=rid)]
        if name == "RECORD_STOP":
            rid = h.get("Recording-Variable-" + RECORDING_ID_VAR) or h.get("variable_" + RECORDING_ID_VAR, "")
            cause = "channel_hangup" if h.get("Answer-State") == "hangup" else h.get("Record-Completion-Cause", "")
            return [
                RecordingStopped(
                    p, ts, wall, leg=uid, path=h.get("Record-File-Path", ""), cause=cause, recording_id=rid
                )
            ]
        return []

    def _conference(self, h: dict[str, str], ts: float, wall: float) -> list[AnyEvent]:
        """mod_conference membership as bridges: a member joining is bridged with every member already
        there (`size` = members now, so a third one JOINS in the state machine), one leaving is
        unbridged from the others — the same events an Asterisk multi-party bridge gives."""
        action, uid, room = h.get("Action", ""), h.get("Unique-ID", ""), h.get("Conference-Name", "")
        members = self._conferences.setdefault(room, [])
        if action == "add-member" and uid and uid not in members:
            number = h.get("Caller-Caller-ID-Number", "")
            out: list[AnyEvent] = [
                Bridged(self.pbx, ts, wall, leg_a=uid, leg_b=m, number_a=number, size=len(members) + 1) for m in members
            ]
            members.append(uid)
            return out
        if action == "del-member" and uid in members:
            members.remove(uid)
            if not members:
                del self._conferences[room]
            gone = uid if h.get("Answer-State") == "hangup" else ""  # it leaves because it hangs up
            return [Unbridged(self.pbx, ts, wall, leg_a=uid, leg_b=m, hanging_up=gone) for m in members]
        return []

    def _new_history(self, leg: str, hist: str) -> str:
        """The transfer_history value if it changed since we last reported it for this leg."""
        if not hist or self._seen_history.get(leg) == hist:
            return ""
        self._seen_history[leg] = hist
        return hist.rsplit("|:", 1)[-1]


def parse_show_json(body: str) -> list[dict[str, Any]]:
    """`show channels as json` / `show calls as json` rows ([] for an empty list, in any of its forms)."""
    body = body.strip()
    if not body or body.startswith("-ERR") or body in ("0 total.", "+OK"):
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return []
    return list(data.get("rows") or [])


def live_channels_from(channels: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[LiveChannel]:
    partner: dict[str, str] = {}
    for c in calls:
        if c.get("uuid") and c.get("b_uuid"):
            partner[c["uuid"]], partner[c["b_uuid"]] = c["b_uuid"], c["uuid"]
    out = []
    for ch in channels:
        uid = ch.get("uuid", "")
        if not uid:
            continue
        variables = {"direction": ch.get("direction", "")}
        if ch.get("presence_id") and ch.get("direction") == "outbound":
            variables["dialed_user"] = _user(ch["presence_id"])
        out.append(
            LiveChannel(
                leg=uid,
                call_id=ch.get("call_uuid") or uid,
                caller=ch.get("cid_num", ""),
                callee=ch.get("dest", ""),
                context=ch.get("context", ""),
                answered=ch.get("callstate") in ("ACTIVE", "HELD", "EARLY") or uid in partner,
                bridged_to=partner.get(uid),
                channel_name=ch.get("name", ""),
                variables=variables,
            )
        )
    return out


# ---- the gevent side ----------------------------------------------------------------------------


def _write_all(fd: int, payload: bytes, timeout: float) -> None:
    """Write all of `payload` to a non-blocking socket fd from any thread (gevent's own send would
    park the calling greenlet on the hub of the thread it runs in)."""
    view = memoryview(payload)
    deadline = 0.0
    while view:
        try:
            view = view[os.write(fd, view) :]
            continue
        except BlockingIOError:
            pass
        now = time.monotonic()
        deadline = deadline or now + timeout
        if now >= deadline:
            raise TimeoutError("ESL socket not writable")
        select.select([], [fd], [], deadline - now)


class _LoopReply:
    """A reply waiter for greenswitch's reply list, standing for a command the asyncio thread wrote:
    the reader greenlet calls `set` / `set_exception` in the hub thread; the result crosses to the
    loop's future with `call_soon_threadsafe`."""

    __slots__ = ("_done", "fut", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[str]) -> None:
        self.loop, self.fut, self._done = loop, fut, False

    def ready(self) -> bool:
        return self._done

    def _deliver(self, value: str | None, exc: BaseException | None) -> None:
        fut = self.fut
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value or "")

    def set(self, event: Any = None) -> None:
        self._done = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._deliver, getattr(event, "data", "") or "", None)

    def set_exception(self, exc: BaseException) -> None:
        self._done = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._deliver, None, PbxUnavailable(f"ESL link lost: {exc!r}"))


def _greenswitch_connection(host: str, port: int, password: str, timeout: float) -> Any:
    """An InboundESL whose reader survives a socket closed mid-frame (the stock one spins on EOF)."""
    import greenswitch

    class _Conn(greenswitch.InboundESL):  # type: ignore[misc]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.wlock = threading.Lock()  # one writer at a time: the hub's greenlets or the asyncio thread

        def write_command(self, data: str, waiter: Any) -> None:
            """Queue `waiter` for the reply and write the command, as one step for every thread, so
            replies (matched in order by the reader greenlet) go to the right waiter. Never yields to
            the gevent hub while holding the lock (that could deadlock a second hub-side writer)."""
            payload = (data + "\n\n").encode()
            with self.wlock:
                if not getattr(self, "connected", False) or not getattr(self, "_run", False):
                    raise greenswitch.esl.NotConnectedError("not connected")
                self._commands_sent.append(waiter)
                try:
                    _write_all(self.sock.fileno(), payload, self.timeout or 5.0)
                except (OSError, TimeoutError):
                    # a partial write leaves the stream unusable: stop reading, the supervisor reconnects
                    self._commands_sent.remove(waiter)
                    self._run = False
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(2)
                    raise

        @staticmethod
        def _read_socket(sock: Any, length: int) -> str:
            data = b""
            while len(data) < length:
                chunk = sock.read(length - len(data))
                if not chunk:
                    raise EOFError(f"socket closed mid-frame ({len(data)} of {length} body bytes)")
                data += chunk
            return data.decode("utf-8", "replace")

        def handle_event(self, event: Any) -> None:
            """Events go straight to the '*' handlers (ours: translate + hand over to asyncio, never
            blocking) from the reader greenlet, instead of through greenswitch's queue and a second
            greenlet: one hop less per event. Everything else is greenswitch's."""
            handlers = self.event_handlers.get("*") if len(self.event_handlers) == 1 else None
            if not handlers or event.headers.get("Content-Type") != "text/event-plain":
                super().handle_event(event)
                return
            event.parse_data(self._read_socket(self.sock_file, int(event.headers["Content-Length"])))
            for handler in handlers:
                self._safe_exec_handler(handler, event)

        def receive_events(self) -> None:
            buf = ""
            while getattr(self, "_run", False):
                try:
                    line = self.sock_file.readline()
                except Exception:
                    line = b""
                if not line:
                    break
                text = line.decode("utf-8", "replace")
                if text == "\n":
                    if not buf.strip():
                        buf = ""
                        continue
                    frame, buf = buf, ""
                    event = None
                    try:
                        # parsing inside the try: a block whose first line is not a header must not kill
                        # the reader (greenswitch's parser raises on it)
                        event = greenswitch.esl.ESLEvent(frame)
                        self.handle_event(event)
                    except EOFError as e:
                        self.closed_reason = str(e)
                        break
                    except IndexError:
                        # a reply nobody waits for (another client's command echoed, or one we gave up on)
                        log.debug("ignoring unsolicited %s", event.headers.get("Content-Type") if event else "")
                    except Exception:
                        shown = dict(list(event.headers.items())[:5]) if event is not None else frame[:200]
                        log.warning("bad ESL frame ignored: %r", shown, exc_info=True)
                    continue
                buf += text
            if buf:
                self.closed_reason = getattr(self, "closed_reason", "") or "socket closed mid-frame"
            with self.wlock:  # no writer queues a waiter after this: it sees connected = False
                self._run = False
                self.connected = False
                waiting = list(self._commands_sent)
            for pending in waiting:
                if not pending.ready():
                    pending.set_exception(greenswitch.esl.NotConnectedError("connection lost"))
            try:
                self.sock.close()
            except OSError:
                pass

    return _Conn(host, port, password, timeout=timeout)


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
        # events cross from the hub thread in batches: a thread-safe deque, and one loop wake-up per
        # burst (only when the deque was empty) instead of one call_soon_threadsafe per event
        self._pending: deque[AnyEvent] = deque()
        self._ready = asyncio.Event()
        self._sink: Callable[[AnyEvent], bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._hub: Any = None
        self._hub_ready = threading.Event()
        self._conn: Any = None
        self._running = False
        self._connected = False
        self.connects = 0  # successful (re)connects, for tests and metrics
        self._folders: set[str] = set()  # spool day folders made already

    # ---- lifecycle ----
    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._hub_ready.clear()
        self._hub = None
        self._thread = threading.Thread(target=self._thread_main, name=f"esl-{self.name}", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._hub_ready.wait, 5)

    async def close(self) -> None:
        self._running = False
        if self._hub is not None:
            self._hub.loop.run_callback_threadsafe(self._shutdown_in_hub)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        self._thread = None
        self._hub = None
        self._connected = False

    def set_sink(self, sink: Callable[[AnyEvent], bool] | None) -> None:
        """A consumer that may take events at once, in the loop callback the hub thread's wake-up
        runs (the recorder's `offer`), instead of one loop iteration later through `events()`;
        offered in order, stopping at the first refusal (the rest go through `events()`)."""
        self._sink = sink

    def _wake(self) -> None:
        """On the loop: hand what the hub thread posted to the sink, or wake `events()`."""
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
        if self._hub is not None:
            self._hub.loop.run_callback_threadsafe(self._drop_in_hub)

    # ---- commands ----
    async def api(self, command: str) -> str:
        return await self.api_reply(command, self.api_begin(command))

    def api_begin(self, command: str) -> asyncio.Future[str]:
        """Write `api <command>` to the socket NOW, from the calling (asyncio) thread; the future gets
        the reply body. Raises PbxUnavailable at once when there is no link to write to."""
        conn, loop = self._conn, self._loop
        if not self._connected or conn is None or loop is None:
            raise PbxUnavailable(f"{self.name}: not connected to FreeSWITCH")
        fut: asyncio.Future[str] = loop.create_future()
        try:
            self._write(conn, "api " + command, _LoopReply(loop, fut))
        except Exception as e:  # NotConnectedError, OSError, TimeoutError: the link is going down
            raise PbxUnavailable(f"{self.name}: api {command.split(' ', 1)[0]} failed: {e!r}") from e
        return fut

    async def api_reply(self, command: str, fut: asyncio.Future[str]) -> str:
        """The reply to a command `api_begin` wrote; -ERR / -USAGE raise PbxCommandError."""
        reply = await asyncio.wait_for(fut, self.command_timeout + 1)
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
            rel = os.path.join(f"{d:%Y}", f"{d:%m}", f"{d:%d}", f"{req.recording_id}.wav")
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
            conn = self._conn
            if conn is None or not conn.connected:  # the link died: a reconnect and resync will follow
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

    # ---- hub thread ----
    def _post(self, item: AnyEvent) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._pending.append(item)
        if len(self._pending) == 1:  # the consumer may be asleep: wake it (once per burst)
            loop.call_soon_threadsafe(self._wake)

    def _thread_main(self) -> None:
        import gevent

        self._hub = gevent.get_hub()
        self._hub_ready.set()
        self._supervisor = gevent.spawn(self._supervise)
        try:
            self._supervisor.join()
        finally:
            self._hub.destroy(destroy_loop=True)

    def _shutdown_in_hub(self) -> None:
        self._drop_in_hub()
        if getattr(self, "_supervisor", None) is not None:
            self._supervisor.kill(block=False)

    def _drop_in_hub(self) -> None:
        conn = self._conn
        if conn is not None:
            conn._run = False
            try:
                conn.sock.shutdown(2)
            except OSError:
                pass

    def _write(self, conn: Any, data: str, waiter: Any) -> None:
        """Every command goes out here, from either thread (the bench's latency probe stamps it)."""
        conn.write_command(data, waiter)

    def _send(self, conn: Any, data: str) -> Any:
        """A command from the hub thread (subscription, resync listing), waiting for its reply."""
        import gevent.event

        result = gevent.event.AsyncResult()
        self._write(conn, data, result)
        return result.get(timeout=self.command_timeout)

    def _supervise(self) -> None:
        import gevent

        backoff = self.backoff_initial
        while self._running:
            conn = None
            up = False
            reason = "shutdown"
            try:
                conn = _greenswitch_connection(self.host, self.port, self._password, timeout=5)
                try:
                    conn.connect()
                except ValueError:
                    raise ConnectionError("authentication failed (wrong ESL password?)") from None
                conn.register_handle("*", self._on_event)
                # LinkUp goes out BEFORE the subscription, so every event of this link follows it in
                # the queue (the recorder tells legs learned on this link from stale ones by it).
                self._post(LinkUp(self.name, time.monotonic(), time.time()))
                up = True
                reply = self._send(conn, "event plain " + SUBSCRIBED)
                if not str(getattr(reply, "data", "")).startswith("+OK"):
                    raise ConnectionError(f"event subscription refused: {getattr(reply, 'data', '')}")
                self._conn, self._connected = conn, True
                self.connects += 1
                backoff = self.backoff_initial
                log.info("%s: connected to FreeSWITCH ESL at %s:%s", self.name, self.host, self.port)
                if self.on_link:
                    self.on_link(True)
                channels = parse_show_json(self._send(conn, "api show channels as json").data or "")
                calls = parse_show_json(self._send(conn, "api show calls as json").data or "")
                self._post(
                    Resync(
                        self.name, time.monotonic(), time.time(), channels=tuple(live_channels_from(channels, calls))
                    )
                )
                conn._receive_events_greenlet.join()
                reason = getattr(conn, "closed_reason", "") or "connection closed by FreeSWITCH"
                if self._running:
                    log.warning("%s: ESL link lost: %s; reconnecting", self.name, reason)
            except gevent.GreenletExit:
                break
            except Exception as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
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
                self._conn = None
                if conn is not None:
                    with getattr(conn, "wlock", contextlib.nullcontext()):  # no write races the close
                        conn._run = False
                        conn.connected = False
                    try:
                        conn.sock.close()
                    except Exception:
                        pass
                if up:
                    self._post(LinkDown(self.name, time.monotonic(), time.time(), reason=reason))
                    if self.on_link:
                        self.on_link(False)
            if not self._running:
                break
            gevent.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    def _on_event(self, event: Any) -> None:
        headers = event.headers
        if "Event-Name" not in headers:
            return
        try:
            out = self._translate(headers)
        except Exception:
            log.exception("%s: cannot translate %s event", self.name, headers.get("Event-Name"))
            return
        for item in out:
            self._post(item)


def decode_event_plain(body: str) -> dict[str, str]:
    """Headers of an `event plain` body (values are URL-encoded on the wire)."""
    out: dict[str, str] = {}
    for line in body.split("\n"):
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = unquote(v)
    return out
