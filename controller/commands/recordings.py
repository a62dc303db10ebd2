"""`callrec recordings list|show`: find recordings from the PBX host, no curl and no token needed.

The same query layer as `GET /api/v1/recordings` (storage.recordings_query) with the same filters, so
the CLI and the API always agree on what a filter matches. The CLI runs with the database's own
credentials, like every admin command, and so sees every recording.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import day_start
from storage import recordings_query
from storage.recordings_query import DIRECTIONS, STATES, BadCursor, SearchFilter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recordings", help="find recordings and show one (metadata, timeline, policy decision)")
    rs = p.add_subparsers(dest="recordings_command", metavar="SUBCOMMAND", required=True)

    ls = rs.add_parser("list", help="recordings matching the filters, newest first (a table, or --json)")
    ls.add_argument("--from", dest="start", type=_time(end=False), help="started at or after: YYYY-MM-DD or ISO time")
    ls.add_argument(
        "--to", dest="end", type=_time(end=True), help="started before: ISO time, or YYYY-MM-DD (that whole day)"
    )
    ls.add_argument("--number", default="", help="customer or account number, in any spelling; or an extension")
    ls.add_argument("--agent", default="", help="an agent who took part (extension)")
    ls.add_argument("--direction", choices=DIRECTIONS)
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--account", default="", help="account id")
    ls.add_argument("--limit", type=_limit, default=50, help="at most this many (1-500, default 50)")
    ls.add_argument("--cursor", help="continue after the previous page (its next_cursor)")
    ls.add_argument("--json", action="store_true", help='print {"recordings": [...], "next_cursor": ...} like the API')
    ls.set_defaults(handler=_list)

    sh = rs.add_parser("show", help="one recording: metadata, timeline, policy decision, events")
    sh.add_argument("id", metavar="ID", help="recording id (as `recordings list` prints it)")
    sh.add_argument("--json", action="store_true", help="print the recording as one JSON object")
    sh.set_defaults(handler=_show)


def _time(*, end: bool):  # type: ignore[no-untyped-def]
    def parse(s: str) -> datetime:
        try:
            if len(s) == 10:  # a day: --from is its start, --to includes it
                day = day_start(datetime.strptime(s, "%Y-%m-%d").date())
                return day + timedelta(days=1) if end else day
            t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    return parse


def _limit(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        n = 0
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError(f"{s!r}: a whole number from 1 to 500")
    return n


def _list(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> tuple[list[dict[str, Any]], str | None]:
        async with open_pool(cfg) as pool:
            f = SearchFilter(
                start=args.start,
                end=args.end,
                numbers=await recordings_query.number_filter(pool, args.number),
                agent=args.agent or None,
                direction=args.direction,
                state=args.state,
                account=args.account or None,
            )
            return await recordings_query.search(pool, f, None, cursor=args.cursor, limit=args.limit)

    try:
        rows, nxt = asyncio.run(go())
    except BadCursor as e:
        print(f"callrec: --cursor: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"recordings": rows, "next_cursor": nxt}, indent=2, default=str))
        return 0
    print(render_table(rows))
    if nxt:
        print(f"more recordings: add --cursor {nxt}")
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        rid = uuid.UUID(args.id)
    except ValueError:
        print(
            f"callrec: {args.id!r} is not a recording id (a UUID, as `callrec recordings list` prints it)",
            file=sys.stderr,
        )
        return 2
    cfg = config_from_args(args)

    async def go() -> dict[str, Any] | None:
        async with open_pool(cfg) as pool:
            rec = await recordings_query.get(pool, rid, None)
            if rec is not None:
                rec["events"] = await recordings_query.events(pool, rid)
            return rec

    rec = asyncio.run(go())
    if rec is None:
        print(f"callrec: no recording {rid}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rec, indent=2, default=str))
    else:
        print(render_detail(rec))
    return 0


# ---- human output ------------------------------------------------------------------------------


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = round(ms / 1000)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _secs(ms: Any) -> str:
    return "?" if ms is None else f"{ms / 1000:.1f}s"


def render_table(rows: list[dict[str, Any]]) -> str:
    """A compact table, newest first; the full id is last so it can be copied into `show`."""
    if not rows:
        return "no recordings match"
    head = ("STARTED (UTC)", "DUR", "DIRECTION", "CUSTOMER", "NUMBER", "AGENTS", "STATE", "ID")
    table = [head] + [
        (
            _when(r["started_at"]),
            _duration(r["duration_ms"]),
            r["direction"],
            r["customer_number"] or "-",
            r["account_number"] or "-",
            ",".join(r["agents"] or []) or "-",
            r["state"] + (" (hold)" if r["legal_hold"] else ""),
            r["id"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in table
    ]
    lines.append(f"{len(rows)} recording(s)")
    return "\n".join(lines)


def consultation_text(c: dict[str, Any]) -> str:
    """One consultation of the timeline as a sentence: who consulted whom and how it ended."""
    target = f"{c.get('target') or '?'} ({c.get('target_class')})"
    text = f"{c.get('agent') or '?'} consults {target}" + ("" if c.get("answered") else ", not answered")
    outcome = c.get("outcome")
    if outcome == "transferred":
        text += ", customer transferred"
    elif outcome == "returned":
        cause = f" ({c['cause']})" if c.get("cause") else ""
        text += f", back with the customer{cause}"
    if c.get("end_ms") is not None:
        text += f" until {_secs(c['end_ms'])}"
    if c.get("recording_id"):
        text += f", recorded as {c['recording_id']}"
    return text


def render_detail(rec: dict[str, Any]) -> str:
    out = [f"recording {rec['id']}"]

    def field(name: str, value: Any) -> None:
        out.append(f"  {name:<14}{value}")

    state = rec["state"] + (f" at {_when(rec['stored_at'])}" if rec.get("stored_at") else "")
    field("state", state + (f" — {rec['error']}" if rec.get("error") else ""))
    field("direction", rec["direction"])
    field("account", f"{rec['account_id']}, number {rec['account_number'] or '-'}")
    field("customer", rec["customer_number"] or "-")
    field("agents", ", ".join(rec["agents"] or []) or "-")
    if rec.get("ring_groups"):
        field("ring groups", ", ".join(rec["ring_groups"]))
    field("pbx", f"{rec['pbx']} ({rec['pbx_kind']}), call {rec['call_id']}")
    field("started", _when(rec["started_at"]))
    stop = _when(rec["stopped_at"]) + (f" ({rec['stop_reason']})" if rec.get("stop_reason") else "")
    field("stopped", stop)
    field("duration", _duration(rec["duration_ms"]))
    field("channels", "stereo: customer left, agent right" if rec["dual_channel"] else "mono mix")
    field("retention", f"until {_when(rec['retention_until'])}" + (", LEGAL HOLD" if rec["legal_hold"] else ""))
    if rec.get("object_uri"):
        field("object", f"{rec['object_uri']} ({rec['object_size']} bytes)")
        field("audio sha256", rec["audio_sha256"])
        field("key ids", ", ".join(rec.get("key_ids") or []) or "-")

    tl = rec.get("timeline") or {}
    out.append("timeline")
    items: list[tuple[int, int, str]] = []  # (offset, order at the same offset, text)
    for t in tl.get("transfers") or []:
        stopped = ", recording stopped" if t.get("stopped_recording") else ""
        target = f"{t.get('target')} ({t.get('target_class')})"
        items.append((t.get("at_ms") or 0, 0, f"{t.get('kind')} transfer to {target}{stopped}"))
    for seg in tl.get("segments") or []:
        end = "" if seg.get("end_ms") is None else f" until {_secs(seg['end_ms'])}"
        items.append((seg.get("start_ms") or 0, 1, f"{seg.get('party')} ({seg.get('class')}){end}"))
    for p in tl.get("pauses") or []:
        end = "still paused" if p.get("end_ms") is None else f"resumed at {_secs(p['end_ms'])}"
        items.append((p.get("start_ms") or 0, 1, f"paused by {p.get('by') or '?'}, {end}"))
    for c in tl.get("consultations") or []:
        items.append((c.get("at_ms") or 0, 0, consultation_text(c)))
    for j in tl.get("conference") or []:
        left = "" if j.get("left_ms") is None else f", left at {_secs(j['left_ms'])}"
        stopped = ", recording stopped" if j.get("stopped_recording") else ""
        items.append((j.get("joined_ms") or 0, 0, f"{j.get('party') or '?'} ({j.get('class')}) joined{left}{stopped}"))
    if tl.get("stop"):
        items.append((tl["stop"].get("at_ms") or 0, 2, f"stop: {tl['stop'].get('reason')}"))
    for at, _, text in sorted(items, key=lambda i: (i[0], i[1])):
        out.append(f"  {_secs(at):>7}  {text}")
    if not items:
        out.append("  (empty)")

    pol = rec.get("policy") or {}
    out.append("policy decision")
    if pol:
        sources = pol.get("sources") or {}
        rows = [("record", pol.get("record")), *(pol.get("settings") or {}).items()]
        for name, value in rows:
            source = f"  (from {sources[name]})" if name in sources else ""
            out.append(f"  {name:<30}{json.dumps(value)}{source}")
    else:
        out.append("  (none recorded)")

    if rec.get("events"):
        out.append("events")
        for e in rec["events"]:
            who = f" by {e['actor']}" if e.get("actor") else ""
            detail = f"  {json.dumps(e['detail'], default=str)}" if e.get("detail") else ""
            out.append(f"  {_when(e['at'])}  {e['kind']}{who}{detail}")
    return "\n".join(out)
