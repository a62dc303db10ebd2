"""The API over the real recorder: a simulated FreeSWITCH call appears live (list + SSE), the agent
pauses it through the API, a supervisor resumes it, and after finalize the stored recording plays
back as the stereo WAV (customer 440 Hz left, agent 880 Hz right) with the pause in its timeline."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab import scenarios as sc
from lab.tones import dominant_hz
from tests.api.conftest import World

pytest.importorskip("controller.recorder")  # the recorder and ESL simulator land with issue A's commit
pytest.importorskip("lab.esl_sim")
from tests.api.real_stack import real_stack


async def test_live_call_pause_resume_and_playback_through_the_recorder(world: World, tmp_path: Path) -> None:
    assert world.session is not None
    async with real_stack(world, tmp_path, {"agent_pause_allowed": True}) as stack:
        seen: dict[str, Any] = {}
        sse_events: list[tuple[str, dict[str, Any]]] = []

        async def read_sse() -> None:
            async with world.session.get(stack.base + "/api/v1/events", headers=world.headers("agent_2001")) as r:  # type: ignore[union-attr]
                event = ""
                async for raw in r.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        sse_events.append((event, json.loads(line[6:])))

        sse = asyncio.create_task(read_sse())
        await stack.wait(lambda: sse_events)  # snapshot received

        async def on_step(step: Any, _handle: Any) -> None:
            async def post(user: str, action: str, body: Any = None) -> Any:
                url = f"{stack.base}/api/v1/calls/{seen['id']}/recording/{action}"
                async with world.session.post(url, headers=world.headers(user), json=body) as r:  # type: ignore[union-attr]
                    return r.status, await r.json()

            if isinstance(step, sc.Pause):
                async with world.session.get(stack.base + "/api/v1/calls", headers=world.headers("agent_2001")) as r:  # type: ignore[union-attr]
                    calls = (await r.json())["calls"]
                assert len(calls) == 1 and calls[0]["agent"] == "2001"
                assert calls[0]["recording"]["state"] == "recording"
                seen.update(calls[0])
                # another agent does not even see it; agent 2001 pauses their own call
                status, _ = await post("agent_2003_ring", "pause")
                assert status == 404
                # a bad body is a 422 naming the field, and changes nothing
                status, err = await post("agent_2001", "pause", {"reason": "x" * 65})
                assert status == 422 and err["error"]["field"] == "reason"
                status, err = await post("agent_2001", "pause", {"via": "fax"})
                assert status == 422 and err["error"]["field"] == "via"
                status, view = await post("agent_2001", "pause", {"reason": "pci", "via": "page"})
                assert status == 200 and view["recording"]["state"] == "paused"
            elif isinstance(step, sc.Resume):
                status, view = await post("sup_mixed", "resume")
                assert status == 200 and view["recording"]["state"] == "recording"

        await stack.play("pause_resume", on_step)
        rec_id = seen["recording"]["id"]
        await stack.wait(lambda: any(e == "call.ended" for e, _ in sse_events))
        sse.cancel()
        states = [d["call"]["recording"]["state"] for e, d in sse_events if e == "call.updated"]
        assert "paused" in states and states.index("paused") < len(states) - 1

        async def stopped() -> bool:
            return await world.pool.fetchval("SELECT state FROM recordings WHERE id = $1::uuid", rec_id) == "stopped"

        await stack.wait(stopped)

        async def stored() -> bool:
            await stack.finalize.drain()
            row = await world.pool.fetchrow(
                "SELECT r.state, j.last_error FROM recordings r LEFT JOIN finalize_jobs j ON j.recording_id = r.id"
                " WHERE r.id = $1::uuid",
                rec_id,
            )
            assert row["state"] != "failed", row["last_error"]
            if row["state"] != "stored":
                await world.pool.execute(  # due now: the test does not wait for retry back-off
                    "UPDATE finalize_jobs SET next_attempt_at = now() WHERE recording_id = $1::uuid", rec_id
                )
            return row["state"] == "stored"

        await stack.wait(stored, within_s=30)
        url = f"{stack.base}/api/v1/recordings/{rec_id}"
        async with world.session.get(url, headers=world.headers("sup_mixed")) as r:
            detail = await r.json()
        assert detail["state"] == "stored"
        assert detail["manifest_verification"]["status"] == "valid"
        assert [p["by"] for p in detail["timeline"]["pauses"]] == ["agent:2001"]
        # who, how, why and the span of the pause, in the signed manifest's timeline
        (pause,) = detail["timeline"]["pauses"]
        assert (pause["how"], pause["reason"], pause["resumed_by"], pause["resumed_how"]) == (
            "page",
            "pci",
            "user:sup_mixed",
            "api",
        )
        assert pause["end_ms"] > pause["start_ms"]
        actors = {e["kind"]: e["actor"] for e in detail["events"]}
        assert actors.get("pause") == "agent:2001" and actors.get("resume") == "user:sup_mixed"

        async with world.session.get(
            f"{stack.base}/api/v1/recordings/{rec_id}/audio", headers=world.headers("agent_2001")
        ) as r:
            assert r.status == 200
            wav_bytes = await r.read()
        with wave.open(io.BytesIO(wav_bytes)) as w:
            assert w.getnchannels() == 2
            frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        left, right = frames[0::2], frames[1::2]
        first = slice(0, 8000)  # first second: before the pause
        assert round(dominant_hz(left[first]) or 0) == 440  # customer on the left
        assert round(dominant_hz(right[first]) or 0) == 880  # agent on the right
