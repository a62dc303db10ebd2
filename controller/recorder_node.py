"""The recorder's per-node state (`_Node`) and the journal write primitives the recorder and its
mixins share (`JOURNAL_DOWN`, `_open_once`).

A module of its own so that `controller.recorder` and the mixins it inherits (pause_control,
announce, resync, live_view) all import these from here and none of the mixins imports recorder.py:
the imports stay acyclic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import asyncpg

from controller.calls import Call, CallTracker
from controller.config import PbxConfig
from controller.drivers.base import PbxDriver, RecordingRequest, SpoolFiles
from controller.numbering import NumberingPlan
from controller.policy import PolicyDecision
from storage import journal

# The database is unreachable or restarting (not a bad statement): such journal writes are retried.
JOURNAL_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


async def _open_once(pool: asyncpg.Pool, call: journal.CallRow, rec: journal.RecordingRow) -> str:
    """journal.open_recording, safe to retry: when an earlier attempt committed but its reply was lost
    with the connection, the row is there and its call id is returned."""
    try:
        return await journal.open_recording(pool, call, rec)
    except asyncpg.UniqueViolationError:
        found = await pool.fetchval("SELECT call_id FROM recordings WHERE id = $1", rec.id)
        if found is None:
            raise
        return str(found)


class _Node:
    def __init__(self, driver: PbxDriver, cfg: PbxConfig | None, numbering: NumberingPlan) -> None:
        self.driver = driver
        self.account = cfg.account if cfg else "main"
        self.inbound_contexts = tuple(cfg.inbound_contexts) if cfg else ()
        self.tracker = self.new_tracker(numbering)
        self.files: dict[str, SpoolFiles] = {}  # recording id → spool files
        self.decisions: dict[str, PolicyDecision] = {}  # call id → decision (recorded or not)
        self.started: dict[str, asyncio.Event] = {}  # recording id → set once the journal has its row
        self.files_known: dict[str, asyncio.Event] = {}  # recording id → set once its start command is answered
        self.chains: dict[int, asyncio.Task[None]] = {}  # call → the last queued action
        # call → its last PBX command of a Mute / Unmute / Stop (see Recorder._send_early), and each
        # such action's command by id(action), awaited where the action runs in the chain
        self.commands: dict[int, asyncio.Task[None]] = {}
        self.sent: dict[int, asyncio.Task[None]] = {}
        self.chain_calls: dict[int, Call] = {}  # calls with queued actions (live until journaled)
        self.known_at_link_up: set[str] = set()  # legs known before the current link came up
        # Legs that hung up between LinkUp and the Resync: the driver's snapshot can predate their
        # hangup while its event is queued ahead of the Resync (a node taken over under load), and
        # adopting such a leg would leave its recording open for ever. None once the Resync is handled.
        self.hung_up_before_resync: set[str] | None = None
        self.task: asyncio.Task[None] | None = None
        self.busy = False  # the consumer task is handling an event (see Recorder.offer)
        self.resync_waiter: asyncio.Task[None] | None = None  # see Recorder._resync_later
        # recording id → its start request, for starts whose command died with the link (StartInDoubt):
        # repeated at the next resync if the call is still up
        self.starts_in_doubt: dict[str, RecordingRequest] = {}
        # recording id → the reply to a start command already written (driver.begin_recording), awaited
        # by the call's chain; the command itself never waits behind journal writes
        self.pending_starts: dict[str, Awaitable[SpoolFiles]] = {}

    def new_tracker(self, numbering: NumberingPlan) -> CallTracker:
        return CallTracker(
            self.driver.name,
            numbering=numbering,
            inbound_contexts=self.inbound_contexts,
            default_account=self.account,
        )
