"""`callrec selftest` on FreeSWITCH: originate loopback test calls over an ESL connection of its own.

Every call stays inside FreeSWITCH (dialplan/freeswitch/callrec_selftest.xml):

  inbound   bgapi originate {origination_uuid=U,origination_caller_id_number=<customer>,selftest_call=T,
              loopback_bowout=false}loopback/<DID>/callrec_selftest <customer> XML callrec_selftest_phones
            → loopback/<DID>-b runs the DID route (sets the callrec_* variables, our callrec.xml hook fires
              CUSTOM callrec::policy, bridges loopback/2901 = the agent phone: rings 1 s, 880 Hz);
              loopback/<DID>-a (uuid U) is the customer's handset: 440 Hz.
  outbound  bgapi originate {…caller id 2901…}loopback/<customer>/callrec_selftest 2901 XML callrec_selftest_phones
            → the outbound route presents DID +15550100101, fires the hook, bridges the customer phone (440 Hz);
              the handset (uuid U) is agent 2901's phone: 880 Hz.
  transfer  api uuid_transfer <customer's PBX leg> +15550130001 XML callrec_selftest   (660 Hz, rings 1 s)
  attended  api uuid_broadcast <agent's PBX leg> att_xfer::{loopback_bowout=false,origination_caller_id_number=2901}
              loopback/+15550140486/callrec_selftest aleg   (always busy: the agent is back with the customer)
  hangup    api uuid_kill U

`selftest_call=T` is copied to the loopback b-leg, so CHANNEL_BRIDGE and the hook's CUSTOM event of
that leg name the test call they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib

from controller.drivers.freeswitch import decode_event_plain
from controller.selftest import AGENT_EXT, FS_CONTEXT, FS_PHONES, PlacedCall, SelftestError

EVENTS = "BACKGROUND_JOB CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE CUSTOM callrec::policy"
TAG_VAR = "selftest_call"


class EslClient:
    """A minimal asyncio ESL client: auth, `api`/`bgapi` with FIFO replies, plain events."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.host, self.port, self.password = host, port, password
        self.events: list[tuple[dict[str, str], str]] = []  # (headers, body)
        self._changed = asyncio.Event()
        self._replies: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed_reason = ""

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head, _ = await self._frame()
        if head.get("Content-Type") != "auth/request":
            raise SelftestError(f"{self.host}:{self.port} is not a FreeSWITCH event socket")
        self._writer.write(f"auth {self.password}\n\n".encode())
        head, _ = await self._frame()
        if not head.get("Reply-Text", "").startswith("+OK"):
            raise SelftestError(f"ESL login refused ({head.get('Reply-Text', '')}): check --password")
        self._task = asyncio.create_task(self._read_loop(), name="selftest-esl")
        reply = await self.command(f"event plain {EVENTS}")
        if not reply.startswith("+OK"):
            raise SelftestError(f"ESL event subscription refused: {reply}")

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _frame(self) -> tuple[dict[str, str], str]:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\n\n")
        head: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\n"):
            if ": " in line:
                k, v = line.split(": ", 1)
                head[k] = v
        body = ""
        if "Content-Length" in head:
            body = (await self._reader.readexactly(int(head["Content-Length"]))).decode("utf-8", "replace")
        return head, body

    async def _read_loop(self) -> None:
        try:
            while True:
                head, body = await self._frame()
                ctype = head.get("Content-Type", "")
                if ctype == "text/event-plain":
                    headers_part, _, inner = body.partition("\n\n")
                    self.events.append((decode_event_plain(headers_part), inner))
                    self._changed.set()
                elif ctype in ("command/reply", "api/response"):
                    self._replies.put_nowait((head, body))
                elif ctype == "text/disconnect-notice":
                    break
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            self.closed_reason = str(e) or type(e).__name__
        finally:
            self.closed_reason = self.closed_reason or "connection closed"
            self._replies.put_nowait(({"Reply-Text": f"-ERR {self.closed_reason}"}, ""))

    async def command(self, line: str) -> str:
        """One command; its reply text (command/reply) or body (api/response)."""
        assert self._writer is not None
        async with self._lock:
            self._writer.write(f"{line}\n\n".encode())
            head, body = await asyncio.wait_for(self._replies.get(), 15)
        if head.get("Content-Type") == "api/response":
            return body
        return head.get("Reply-Text", "")

    async def wait_event(self, pred, within: float):  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + within
        seen = 0
        while True:
            for headers, body in self.events[seen:]:
                if pred(headers, body):
                    return headers, body
            seen = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


class FreeSwitchOriginator:
    kind = "freeswitch"
    # uuid_transfer IS FreeSWITCH's redirect; the customer leg's transfer_history names the number
    redirect_named = True

    def __init__(self, host: str, port: int, password: str) -> None:
        self.esl = EslClient(host, port, password)

    async def connect(self) -> None:
        await self.esl.connect()

    async def close(self) -> None:
        await self.esl.close()

    def recipes(self) -> list[str]:
        return [
            "inbound: bgapi originate {origination_uuid=U,origination_caller_id_number=<customer +1555012NNNN>,"
            f"{TAG_VAR}=T,loopback_bowout=false}}loopback/<DID>/{FS_CONTEXT} <customer> XML {FS_PHONES}",
            f"outbound: bgapi originate {{origination_uuid=U,origination_caller_id_number={AGENT_EXT},"
            f"{TAG_VAR}=T,loopback_bowout=false}}loopback/<customer>/{FS_CONTEXT} {AGENT_EXT} XML {FS_PHONES}",
            f"transfer: api uuid_transfer <customer PBX leg> +15550130001 XML {FS_CONTEXT}",
            "redirect: the same uuid_transfer (another ESL client moving the customer's leg)",
            f"attended: api uuid_broadcast <agent PBX leg> att_xfer::{{loopback_bowout=false,"
            f"origination_caller_id_number={AGENT_EXT}}}loopback/+15550140486/{FS_CONTEXT} aleg",
            "code: api uuid_recv_dtmf <agent PBX leg> ~*1 (then ~*2)",
            "hangup: api uuid_kill U",
        ]

    async def _originate(self, call: PlacedCall, dest: str, caller: str, app_exten: str) -> None:
        u = str(uuidlib.uuid4())
        tag = uuidlib.uuid4().hex[:12]
        call.handle.update({"handset_uuid": u, "tag": tag})
        vars_ = ",".join(
            [
                f"origination_uuid={u}",
                f"origination_caller_id_number={caller}",
                "origination_caller_id_name=callrec-selftest",
                f"{TAG_VAR}={tag}",
                "loopback_bowout=false",
            ]
        )
        reply = await self.esl.command(
            f"bgapi originate {{{vars_}}}loopback/{dest}/{FS_CONTEXT} {app_exten} XML {FS_PHONES}"
        )
        job = reply.split("Job-UUID:", 1)[1].strip() if "Job-UUID:" in reply else ""
        if not job:
            raise SelftestError(f"bgapi originate refused: {reply.strip()}")
        found = await self.esl.wait_event(
            lambda h, b: h.get("Event-Name") == "BACKGROUND_JOB" and h.get("Job-UUID") == job, 30
        )
        if found is None:
            raise SelftestError("originate gave no result within 30 s")
        result = found[1].strip()
        if not result.startswith("+OK"):
            hint = ""
            if "NO_ROUTE" in result or "DESTINATION" in result:
                hint = f" — is dialplan/freeswitch/callrec_selftest.xml installed (contexts {FS_CONTEXT}, {FS_PHONES})?"
            raise SelftestError(f"originate: {result}{hint}")

    async def inbound(self, call: PlacedCall) -> None:
        await self._originate(call, call.did, call.customer, call.customer)

    async def outbound(self, call: PlacedCall) -> None:
        await self._originate(call, call.customer, AGENT_EXT, AGENT_EXT)

    def _tagged(self, call: PlacedCall, headers: dict[str, str]) -> bool:
        return headers.get(f"variable_{TAG_VAR}") == call.handle.get("tag")

    async def wait_hook(self, call: PlacedCall, within: float) -> dict[str, str] | None:
        found = await self.esl.wait_event(
            lambda h, b: h.get("Event-Subclass") == "callrec::policy" and self._tagged(call, h), within
        )
        if found is None:
            return None
        h = found[0]
        return {k[8:]: v for k, v in h.items() if k.startswith("callrec_") and v}

    async def _bridge(self, call: PlacedCall) -> dict[str, str]:
        found = await self.esl.wait_event(
            lambda h, b: h.get("Event-Name") == "CHANNEL_BRIDGE" and self._tagged(call, h), 10
        )
        if found is None:
            raise SelftestError("no CHANNEL_BRIDGE seen for the call: cannot find the customer's PBX leg")
        return found[0]

    async def attended_transfer(self, call: PlacedCall, target: str) -> None:
        """att_xfer run on the agent's PBX leg (Bridge-B of the call's bridge), as FreeSWITCH's attended
        transfer key does (the recipe of the project's real capture S4b)."""
        agent = (await self._bridge(call)).get("Bridge-B-Unique-ID", "")
        call.handle["agent_leg"] = agent
        dial = f"{{loopback_bowout=false,origination_caller_id_number={AGENT_EXT}}}loopback/{target}/{FS_CONTEXT}"
        reply = await self.esl.command(f"api uuid_broadcast {agent} att_xfer::{dial} aleg")
        if not reply.startswith("+OK"):
            raise SelftestError(f"uuid_broadcast att_xfer: {reply.strip()}")

    async def dial_code(self, call: PlacedCall, digits: str) -> None:
        """DTMF received on the agent's PBX leg (Bridge-B); "~" = processed as a phone's digits are
        (FreeSWITCH otherwise marks queued digits skip-process, and no binding would see them)."""
        agent = call.handle.get("agent_leg") or (await self._bridge(call)).get("Bridge-B-Unique-ID", "")
        call.handle["agent_leg"] = agent
        reply = await self.esl.command(f"api uuid_recv_dtmf {agent} ~{digits}")
        if not reply.startswith("+OK"):
            raise SelftestError(f"uuid_recv_dtmf: {reply.strip()}")

    async def transfer(self, call: PlacedCall, target: str) -> None:
        found = await self._bridge(call)
        leg = found.get("Bridge-A-Unique-ID") or found.get("Unique-ID", "")
        call.handle["customer_leg"] = leg
        reply = await self.esl.command(f"api uuid_transfer {leg} {target} XML {FS_CONTEXT}")
        if not reply.startswith("+OK"):
            raise SelftestError(f"uuid_transfer: {reply.strip()}")

    async def redirect(self, call: PlacedCall, target: str) -> None:
        await self.transfer(call, target)

    async def hangup(self, call: PlacedCall) -> None:
        u = call.handle.get("handset_uuid")
        if u:
            await self.esl.command(f"api uuid_kill {u}")
