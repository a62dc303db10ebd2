"""Asterisk driver: AMI (panoramisk framing) → normalized events; recording commands → MixMonitor.

Recording layout (fixtures' NOTES §6.1): MixMonitor on the CUSTOMER channel with separate leg files.
Asterisk's `r()` file holds what the channel sends in (the customer's voice) and `t()` what is sent
to it (the agent / transfer target): `r()` writes `<id>-rx.wav` (customer) and `t()` `<id>-tx.wav`
(agent), the naming of the real captures (S1-rx.wav = 440 Hz customer) and of `storage.audio`, which
joins rx LEFT + tx RIGHT at finalize. (base.SpoolFiles' docstring says the opposite; see the report.)

The recording is tagged on the channel with `CALLREC_RECORDING` (our id), `CALLREC_FILES` (the leg
paths) and MixMonitor's `i(CALLREC_MIXMON)` (its MixMonitorID). With those three in manager.conf
`channelvars`, `CoreShowChannels` after a (re)connect tells which channels are recording what, so a
restart neither loses nor duplicates a recording.

The link reconnects with capped exponential backoff. A refused login is logged ONCE as an error
(repeats at debug level until it succeeds) and retried. After every login: `LinkUp`, then `Resync`
(CoreShowChannels); events that arrive while the listing runs are held back until after `Resync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from panoramisk.message import Message

from controller.config import PbxConfig
from controller.drivers.ami_protocol import AmiLinkLost, AmiProtocol, header
from controller.drivers.ami_translate import (
    TONE_DIGIT,
    VAR_FEATURE_RESULT,
    VAR_FILES,
    VAR_MIXMON,
    VAR_PROMPT,
    VAR_RECORDING,
    VAR_TONE,
    VAR_TONE_WAIT,
    AmiTranslator,
    RecordingTag,
)
from controller.drivers.base import PbxCommandError, PbxUnavailable, RecordingRequest, SpoolFiles, StartInDoubt
from controller.events import AnyEvent, LinkDown, LinkUp, LiveChannel, Resync
from controller.tones import TONES, Tone

log = logging.getLogger(__name__)


class AmiAuthError(PbxCommandError):
    """The AMI login was refused (wrong username/secret, or the user may not connect from here)."""


def spool_relpath(recording_id: str, when: datetime, leg: str) -> str:
    """<YYYY>/<MM>/<DD>/<recording_id>-<leg>.wav (leg = rx | tx)."""
    return f"{when:%Y}/{when:%m}/{when:%d}/{recording_id}-{leg}.wav"


class AsteriskDriver:
    kind = "asterisk"

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str = "",
        secret: str = "",
        *,
        record_dir: str = "",
        events: str = "call,user",
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
    ) -> None:
        self.name = name
        self.host, self.port = host, port
        self.username, self._secret = username, secret
        self.record_dir = record_dir  # the spool as Asterisk sees it; "" → same path as the controller's
        self.events_filter = events
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.translator = AmiTranslator(name)
        self._queue: asyncio.Queue[AnyEvent] = asyncio.Queue()
        self._sink: Callable[[AnyEvent], bool] | None = None
        self._protocol: AmiProtocol | None = None
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._held: list[Message] | None = None  # events arriving during a resync
        self._lost: asyncio.Future[Exception | None] | None = None
        self._failure_logged: str | None = None
        self.connects = 0  # successful logins so far (for tests and /health)
        self.hold_rebridge = 0.15  # seconds a re-bridge may wait for its transfer event
        self._flush_timer: asyncio.TimerHandle | None = None
        self._folders: set[str] = set()  # spool day folders made already

    @classmethod
    def from_config(cls, pbx: PbxConfig) -> AsteriskDriver:
        """The recorder passes the controller's spool as RecordingRequest.spool_dir; `record_dir` is the
        same directory as Asterisk sees it (a shared mount), used only in the MixMonitor action."""
        return cls(pbx.name, pbx.host, pbx.effective_port, pbx.username, pbx.secret, record_dir=pbx.record_dir)

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"ami-{self.name}")

    async def close(self) -> None:
        self._closing = True
        if self._protocol is not None:
            self._protocol.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._connected = False

    def drop_link(self) -> None:
        """Cut the AMI connection; the session loop reconnects, logs in and resyncs."""
        if self._protocol is not None:
            self._protocol.close()

    async def events(self) -> AsyncIterator[AnyEvent]:  # type: ignore[override]
        while True:
            yield await self._queue.get()

    def set_sink(self, sink: Callable[[AnyEvent], bool] | None) -> None:
        """A consumer that may take an event at once, inside the callback that parsed it (the
        recorder's `offer`): tried only while nothing is queued, so order holds; False → queued."""
        self._sink = sink

    def _emit(self, event: AnyEvent) -> None:
        sink = self._sink
        if sink is not None and self._queue.empty() and sink(event):
            return
        self._queue.put_nowait(event)

    def _stamp(self) -> tuple[float, float]:
        return time.monotonic(), time.time()

    def _fail(self, kind: str, message: str, delay: float) -> None:
        """Log a connection problem once per kind of failure; repeats go to debug."""
        if self._failure_logged != kind:
            self._failure_logged = kind
            log.error("asterisk %s: %s; retrying with backoff (next in %.1fs)", self.name, message, delay)
        else:
            log.debug("asterisk %s: %s; retry in %.1fs", self.name, message, delay)

    async def _run(self) -> None:
        delay = self.backoff_initial
        while not self._closing:
            try:
                await self._session()
                delay = self.backoff_initial
                continue
            except AmiAuthError as e:
                self._fail("auth", f"AMI login as {self.username!r} refused ({e}); check manager.conf", delay)
            except (OSError, AmiLinkLost, TimeoutError) as e:
                self._fail("connect", f"cannot reach AMI at {self.host}:{self.port} ({e or type(e).__name__})", delay)
            if self._closing:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[Exception | None] = loop.create_future()
        reason = ""

        def on_lost(exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(exc)

        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: AmiProtocol(self._on_message, on_lost), self.host, self.port),
            self.action_timeout,
        )
        assert isinstance(protocol, AmiProtocol)
        try:
            assert protocol.banner_seen is not None
            await asyncio.wait_for(asyncio.shield(protocol.banner_seen), self.action_timeout)
            self._held = []
            reply = await self._send(
                protocol,
                {"Action": "Login", "Username": self.username, "Secret": self._secret, "Events": self.events_filter},
            )
            if not reply.success:
                raise AmiAuthError(header(reply, "Message") or "authentication failed")
            self._protocol, self._lost = protocol, lost
            self._connected = True
            self.connects += 1
            if self._failure_logged:
                log.info("asterisk %s: AMI link up again at %s:%d", self.name, self.host, self.port)
            self._failure_logged = None
            self._emit(LinkUp(self.name, *self._stamp()))
            await self._resync(protocol)
            pinger = asyncio.create_task(self._pinger(protocol))
            try:
                exc = await lost
            finally:
                pinger.cancel()
            reason = str(exc) if exc else "connection closed"
            log.warning("asterisk %s: AMI link lost (%s); reconnecting", self.name, reason)
        finally:
            if self._connected:
                self._emit(LinkDown(self.name, *self._stamp(), reason=reason if lost.done() else "resync failed"))
            self._held = None
            self._connected = False
            if self._protocol is protocol:
                self._protocol = None
            protocol.close()

    async def _pinger(self, protocol: AmiProtocol) -> None:
        """A half-open TCP link shows up only when something is sent; Ping keeps us honest."""
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send(protocol, {"Action": "Ping"})
            except (AmiLinkLost, TimeoutError):
                protocol.close()
                return

    async def _resync(self, protocol: AmiProtocol) -> None:
        listing = await self._send(protocol, {"Action": "CoreShowChannels"}, as_list=True)
        rows = [m for m in listing if header(m, "Event") == "CoreShowChannel"]
        channels = self.translator.reset_from(rows)
        self._emit(Resync(self.name, *self._stamp(), channels=channels))
        held, self._held = self._held or [], None
        for msg in held:
            self._translate(msg)

    def _on_message(self, msg: Message) -> None:
        if self._held is not None:
            self._held.append(msg)
            return
        self._translate(msg)

    def _translate(self, msg: Message) -> None:
        try:
            events = self.translator.feed(msg, *self._stamp())
        except Exception:  # a malformed event must not kill the link
            log.exception("asterisk %s: cannot translate AMI event %r", self.name, header(msg, "Event"))
            return
        for ev in events:
            self._emit(ev)
        if self.translator.held and self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(self.hold_rebridge, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        for ev in self.translator.flush():
            self._emit(ev)

    def _write(self, protocol: AmiProtocol, action: dict[str, Any], as_list: bool | None = None) -> Any:
        """Write one action to the transport NOW; the future gets its reply. Every action goes out
        here (the bench's latency probe stamps it)."""
        if protocol.closed:
            raise AmiLinkLost("AMI link is closed")
        return protocol.send(action, as_list=as_list)

    async def _send(self, protocol: AmiProtocol, action: dict[str, Any], as_list: bool | None = None) -> Any:
        fut = self._write(protocol, action, as_list)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.action_timeout)
        except TimeoutError:
            fut.cancel()
            raise

    async def action(self, action: dict[str, Any], as_list: bool | None = None) -> Any:
        """Send one AMI action on the live link; PbxUnavailable when there is none."""
        protocol = self._protocol
        if protocol is None or not self._connected:
            raise PbxUnavailable(f"asterisk {self.name}: no AMI link")
        try:
            return await self._send(protocol, action, as_list)
        except (AmiLinkLost, TimeoutError) as e:
            raise PbxUnavailable(f"asterisk {self.name}: {action.get('Action')} got no reply ({e})") from e

    async def _checked(self, action: dict[str, Any], as_list: bool | None = None) -> Message:
        reply = await self.action(action, as_list)
        if not reply.success:
            raise PbxCommandError(f"asterisk {self.name}: {action['Action']} failed: {header(reply, 'Message')}")
        return reply

    # ---- recording commands ---------------------------------------------------------------------

    def _channel(self, leg: str) -> str:
        name = self.translator.channel_name(leg)
        if not name:
            raise PbxCommandError(f"asterisk {self.name}: no live channel with Uniqueid {leg}")
        return name

    def _pbx_path(self, controller_path: str, spool_dir: str) -> str:
        if not self.record_dir:
            return controller_path
        return os.path.join(self.record_dir, os.path.relpath(controller_path, spool_dir))

    async def start_recording(self, req: RecordingRequest) -> SpoolFiles:
        return await self.begin_recording(req)

    def begin_recording(self, req: RecordingRequest) -> Awaitable[SpoolFiles]:
        """MixMonitor the customer channel: the actions are written NOW (the recorder calls this in
        the step that handled the bridge event) and the awaitable gives the files once Asterisk has
        answered, or raises (never this call itself). If our MixMonitor already runs there (a
        controller killed between the PBX command and its journal row, then a resync), it is re-tagged
        and its files returned instead of starting a second recording of the same call."""
        try:
            channel = self._channel(req.customer_leg)
        except PbxCommandError as e:
            return self._failed(e)
        running = self.translator.recordings.get(req.customer_leg)
        if running is not None and not running.mixmon_id:
            # Only a MixMonitor that set its i() id surely runs: tags alone are what a controller
            # killed (or a link lost) between its Setvar and its MixMonitor leaves behind.
            running = None
        if running is not None and running.files.rx and running.files.tx:
            return self._retag(channel, running, req)
        now = datetime.now(UTC)
        files = req.files or SpoolFiles(
            rx=os.path.join(req.spool_dir, spool_relpath(req.recording_id, now, "rx")),
            tx=os.path.join(req.spool_dir, spool_relpath(req.recording_id, now, "tx")),
        )
        assert files.rx and files.tx
        folder = os.path.dirname(files.rx)
        if not self.record_dir and folder not in self._folders:  # same host: make the day folder once
            with contextlib.suppress(OSError):  # (Asterisk does not create it)
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
        rx_pbx = self._pbx_path(files.rx, req.spool_dir)
        tx_pbx = self._pbx_path(files.tx, req.spool_dir)
        tag = RecordingTag(req.recording_id, files)
        self.translator.note_recording(req.customer_leg, tag)  # before the action: MixMonitorStart may come first
        # One round trip, not three: Asterisk runs a connection's actions in order, so the tags are set
        # before MixMonitor starts; only then are the three replies awaited.
        actions = [
            {"Action": "Setvar", "Channel": channel, "Variable": VAR_RECORDING, "Value": req.recording_id},
            {"Action": "Setvar", "Channel": channel, "Variable": VAR_FILES, "Value": f"{files.rx}|{files.tx}"},
            {
                "Action": "MixMonitor",
                "Channel": channel,
                # r() = what the customer channel sends (customer), t() = what it is sent (agent)
                "Options": f"i({VAR_MIXMON})r({rx_pbx})t({tx_pbx})",
            },
        ]
        protocol = self._protocol
        sent: list[Any] = []
        for a in actions:
            try:
                if protocol is None or not self._connected:
                    raise AmiLinkLost("no AMI link")
                sent.append(self._write(protocol, a))
            except AmiLinkLost as e:
                sent.append(e)
        return self._started(req, channel, tag, files, list(zip(actions, sent, strict=True)))

    async def _failed(self, error: Exception) -> SpoolFiles:
        raise error

    async def _retag(self, channel: str, running: RecordingTag, req: RecordingRequest) -> SpoolFiles:
        await self._checked(
            {"Action": "Setvar", "Channel": channel, "Variable": VAR_RECORDING, "Value": req.recording_id}
        )
        log.warning(
            "asterisk %s: channel %s already records (%s); reusing it for %s",
            self.name,
            channel,
            running.recording_id,
            req.recording_id,
        )
        running.recording_id = req.recording_id
        return running.files

    async def _reply(self, action: dict[str, Any], sent: Any) -> Message:
        """The reply to an action `_write` sent (or the AmiLinkLost it raised), as `_checked` gives it."""
        try:
            if isinstance(sent, BaseException):
                raise sent
            try:
                reply = await asyncio.wait_for(asyncio.shield(sent), self.action_timeout)
            except TimeoutError:
                sent.cancel()
                raise
        except (AmiLinkLost, TimeoutError) as e:
            raise PbxUnavailable(f"asterisk {self.name}: {action.get('Action')} got no reply ({e})") from e
        if not reply.success:
            raise PbxCommandError(f"asterisk {self.name}: {action['Action']} failed: {header(reply, 'Message')}")
        assert isinstance(reply, Message)
        return reply

    async def _started(
        self, req: RecordingRequest, channel: str, tag: RecordingTag, files: SpoolFiles, sent: list[tuple[Any, Any]]
    ) -> SpoolFiles:
        results = await asyncio.gather(*(self._reply(a, f) for a, f in sent), return_exceptions=True)
        reply = results[-1]
        if isinstance(reply, BaseException):
            self.translator.forget_recording(req.customer_leg)
            protocol = self._protocol
            if isinstance(reply, PbxUnavailable) and (protocol is None or protocol.closed):
                # the link died with MixMonitor on its way: a reconnect and resync will tell
                raise StartInDoubt(str(reply), files) from reply
            raise reply
        for failed in (r for r in results[:-1] if isinstance(r, BaseException)):
            # The recording runs; only re-adoption after a controller restart loses its tag.
            log.warning(
                "asterisk %s: tagging %s failed (%s); recording %s runs untagged",
                self.name,
                channel,
                failed,
                req.recording_id,
            )
        tag.mixmon_id = header(reply, "MixMonitorID")
        return files

    def _mixmon_id(self, leg: str) -> str:
        tag = self.translator.recordings.get(leg)
        if tag is not None and tag.mixmon_id:
            return tag.mixmon_id
        ch = self.translator.channels.get(leg)
        return ch.variables.get(VAR_MIXMON.lower(), "") if ch else ""

    async def _mute(self, leg: str, state: int) -> None:
        action = {"Action": "MixMonitorMute", "Channel": self._channel(leg), "Direction": "both", "State": str(state)}
        mixmon = self._mixmon_id(leg)
        if mixmon:
            action["MixMonitorID"] = mixmon
        await self._checked(action)

    async def pause_recording(self, leg: str, files: SpoolFiles) -> None:
        await self._mute(leg, 1)

    async def resume_recording(self, leg: str, files: SpoolFiles) -> None:
        await self._mute(leg, 0)

    async def stop_recording(self, leg: str, files: SpoolFiles) -> None:
        """StopMixMonitor; a channel already gone means the recording already ended with it."""
        channel = self.translator.channel_name(leg)
        if not channel:
            return
        action = {"Action": "StopMixMonitor", "Channel": channel}
        mixmon = self._mixmon_id(leg)
        if mixmon:
            action["MixMonitorID"] = mixmon
        reply = await self.action(action)
        if not reply.success and "no such channel" not in header(reply, "Message").lower():
            raise PbxCommandError(f"asterisk {self.name}: StopMixMonitor failed: {header(reply, 'Message')}")
        if reply.success:
            with contextlib.suppress(PbxCommandError, PbxUnavailable):
                await self._checked({"Action": "Setvar", "Channel": channel, "Variable": VAR_RECORDING, "Value": ""})

    # ---- tones (dialplan/asterisk/callrec.conf [callrec-feature]) ----------------------------------

    async def _setvars(self, channel: str, values: dict[str, str]) -> None:
        """Several Setvar actions in one round trip (Asterisk runs a connection's actions in order)."""
        actions = [{"Action": "Setvar", "Channel": channel, "Variable": k, "Value": v} for k, v in values.items()]
        for r in await asyncio.gather(*(self._checked(a) for a in actions), return_exceptions=True):
            if isinstance(r, BaseException):
                raise r

    @staticmethod
    def _tone_vars(tone: Tone) -> dict[str, str]:
        return {VAR_TONE: tone.asterisk(), VAR_TONE_WAIT: f"{tone.duration_ms / 1000:.2f}", VAR_PROMPT: ""}

    async def feature_reply(self, leg: str, accepted: bool) -> None:
        """Answer the feature code Gosub that waits on the agent's channel: the tone first, then the
        result it waits for (it then plays the tone on that channel only and returns to the bridge)."""
        values = self._tone_vars(TONES["confirm" if accepted else "refuse"])
        values[VAR_FEATURE_RESULT] = "ok" if accepted else "refused"
        await self._setvars(self._channel(leg), values)

    async def play_tone(self, leg: str, tone: Tone) -> None:
        """Play `tone` on one channel of a bridge: AMI has no "play a file to a bridged channel", so the
        tone goes in a channel variable and the hidden applicationmap code (`TONE_DIGIT`) is "received"
        on that channel (PlayDTMF with Receive): its Gosub plays the tone there and nowhere else."""
        await self._play(self._channel(leg), self._tone_vars(tone))

    async def play_prompt(self, leg: str, prompt: str) -> None:
        """The announcement prompt (a sound Playback() takes) on that channel only, as play_tone."""
        await self._play(self._channel(leg), {VAR_PROMPT: prompt})

    async def _play(self, channel: str, values: dict[str, str]) -> None:
        await self._setvars(channel, values)
        # as_list=False: Asterisk answers "DTMF successfully queued", which panoramisk would otherwise
        # take for an async Originate and wait for events that never come
        await self._checked(
            {"Action": "PlayDTMF", "Channel": channel, "Digit": TONE_DIGIT, "Duration": "100", "Receive": "true"},
            as_list=False,
        )

    async def live_channels(self) -> list[LiveChannel]:
        listing = await self.action({"Action": "CoreShowChannels"}, as_list=True)
        return list(self.translator.snapshot([m for m in listing if header(m, "Event") == "CoreShowChannel"]))
