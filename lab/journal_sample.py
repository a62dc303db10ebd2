"""A recording start as the recorder journals it, with sample values (an inbound call from
+15551230000 to the DID +15557000100, answered by agent 2001): for the webhooks bench and the tests
that need a recording in the journal without a PBX."""

from __future__ import annotations

import uuid

from storage import journal


def inbound_start(pbx: str, leg: str, recording_id: str, now: float) -> tuple[journal.CallRow, journal.RecordingRow]:
    """The call row and the recording row of one start on `pbx`'s customer leg `leg` at `now`."""
    call = journal.CallRow(
        str(uuid.uuid4()), pbx, leg, "main", "inbound", "+15551230000", "+15557000100", "2001", "", now, now
    )
    rec = journal.RecordingRow(
        recording_id,
        pbx,
        "freeswitch",
        leg,
        "main",
        "inbound",
        "+15551230000",
        "+15557000100",
        "2001",
        {},
        True,
        {},
        {},
        now,
        30,
    )
    return call, rec
