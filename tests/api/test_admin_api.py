"""The administrators' API over real HTTP and a real database: optimistic concurrency (409 with the
current values), validation naming the field, audit with who/old/new and its filters, numbers with
inheritance, the numbering plan and its tester, the "why" box, and policy changes reaching a
running policy cache through PostgreSQL notifications (no restart, no waiting for the poll)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller import service
from tests.api.conftest import World


async def _json(r: Any) -> Any:
    return await r.json()


async def test_two_admins_same_settings_second_save_gets_409_with_current_values(world: World) -> None:
    await world.request("PUT", "/api/v1/accounts/conc/settings", "admin", json={"retention_days": 100})
    a = await world.request("GET", "/api/v1/accounts/conc/settings", "admin")
    b = await world.request("GET", "/api/v1/accounts/conc/settings", "admin_nodl")
    seen_a, seen_b = await a.json(), await b.json()
    assert seen_a["version"] == seen_b["version"] and a.headers["ETag"] == f'"{seen_a["version"]}"'

    first = await world.request(
        "PUT",
        "/api/v1/accounts/conc/settings",
        "admin",
        json={"continue_on_external_transfer": False},
        headers={"If-Match": a.headers["ETag"]},
    )
    assert first.status == 200
    second = await world.request(
        "PUT", "/api/v1/accounts/conc/settings", "admin_nodl", json={"retention_days": 30, "version": seen_b["version"]}
    )
    assert second.status == 409
    err = (await second.json())["error"]
    assert err["code"] == "conflict"
    assert err["current"]["settings"]["continue_on_external_transfer"] is False  # the first admin's save
    assert err["current"]["settings"]["retention_days"] == 100
    assert err["current"]["version"] == (await first.json())["version"]
    now = await (await world.request("GET", "/api/v1/accounts/conc/settings", "admin")).json()
    assert now["settings"]["retention_days"] == 100  # the stale save changed nothing
    # saving again on top of the current version works
    again = await world.request(
        "PUT", "/api/v1/accounts/conc/settings", "admin_nodl", json={"retention_days": 30, "version": now["version"]}
    )
    assert again.status == 200 and (await again.json())["settings"]["retention_days"] == 30


async def test_number_override_and_plan_conflicts(world: World) -> None:
    path = "/api/v1/numbers/%2B15550009901/override"
    r = await world.request("PUT", path, "admin", json={"account": "main", "override": {"record_inbound": False}})
    v = (await r.json())["version"]
    ok = await world.request("PUT", path, "admin", json={"override": {"dual_channel": False}, "version": v})
    assert ok.status == 200
    stale = await world.request("PUT", path, "admin_nodl", json={"override": {}, "version": v})
    assert stale.status == 409
    assert (await stale.json())["error"]["current"]["override"] == {"dual_channel": False}
    stale_delete = await world.request("DELETE", path, "admin_nodl", headers={"If-Match": f'"{v}"'})
    assert stale_delete.status == 409

    plan = await (await world.request("GET", "/api/v1/accounts/conc/numbering", "admin")).json()
    assert plan["is_default"] is True
    body = {"internal": ["^2\\d{3}$"], "ring_groups": ["^6\\d{2}$"], "private_extensions": []}
    r1 = await world.request(
        "PUT", "/api/v1/accounts/conc/numbering", "admin", json={**body, "version": plan["version"]}
    )
    assert r1.status == 200
    r2 = await world.request(
        "PUT", "/api/v1/accounts/conc/numbering", "admin_nodl", json={"internal": [], "version": plan["version"]}
    )
    assert r2.status == 409
    assert (await r2.json())["error"]["current"]["plan"]["ring_groups"] == ["^6\\d{2}$"]


async def test_numbering_plan_validation_names_the_pattern_and_changes_nothing(world: World) -> None:
    await world.request("PUT", "/api/v1/accounts/val/settings", "admin", json={})
    good = {"internal": ["^1\\d{3}$"], "ring_groups": ["^6\\d{2}$"]}
    assert (await world.request("PUT", "/api/v1/accounts/val/numbering", "admin", json=good)).status == 200
    r = await world.request(
        "PUT", "/api/v1/accounts/val/numbering", "admin", json={"internal": ["^1\\d{3}$"], "ring_groups": ["^7", "(["]}
    )
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["field"] == "ring_groups[1]"
    r = await world.request("PUT", "/api/v1/accounts/val/numbering", "admin", json={"internals": []})
    assert r.status == 422 and (await r.json())["error"]["field"] == "internals"
    r = await world.request("PUT", "/api/v1/accounts/val/numbering", "admin", json={"internal": "^1"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "internal"
    now = await (await world.request("GET", "/api/v1/accounts/val/numbering", "admin")).json()
    assert now["plan"] == {"internal": ["^1\\d{3}$"], "ring_groups": ["^6\\d{2}$"], "private_extensions": []}
    assert (await world.request("PUT", "/api/v1/accounts/nosuch/numbering", "admin", json=good)).status == 404


async def test_classify_names_class_and_pattern(world: World) -> None:
    plan = {"internal": ["^2\\d{3}$"], "ring_groups": ["^6\\d{2}$"], "private_extensions": ["^8\\d{4}$"]}
    await world.request("PUT", "/api/v1/accounts/cls/settings", "admin", json={})
    await world.request("PUT", "/api/v1/accounts/cls/numbering", "admin", json=plan)
    expect = {
        "2001": ("internal", "^2\\d{3}$"),
        "600": ("ring_group", "^6\\d{2}$"),
        "81234": ("private_extension", "^8\\d{4}$"),
        "sip:2002@pbx.example": ("internal", "^2\\d{3}$"),
        "+15557654321": ("external", None),
    }
    for number, (cls, pattern) in expect.items():
        r = await world.request(
            "GET", "/api/v1/accounts/cls/numbering/classify", "sup_sales", params={"number": number}
        )
        assert r.status == 200
        body = await r.json()
        assert (body["class"], body["matched_pattern"]) == (cls, pattern), number
    r = await world.request("GET", "/api/v1/accounts/cls/numbering/classify", "admin")
    assert r.status == 400 and (await r.json())["error"]["field"] == "number"


async def test_numbers_list_shows_override_and_inherited_values(world: World) -> None:
    await world.request("PUT", "/api/v1/accounts/nums/settings", "admin", json={"retention_days": 45})
    await world.request(
        "PUT",
        "/api/v1/numbers/%2B15550007001/override",
        "admin",
        json={"account": "nums", "override": {"continue_on_external_transfer": False}},
    )
    await world.request("PUT", "/api/v1/numbers/%2B15550007002/override", "admin", json={"account": "nums"})
    r = await world.request("GET", "/api/v1/accounts/nums/numbers", "sup_mixed")
    assert r.status == 200
    body = await r.json()
    assert body["account_settings"]["retention_days"] == 45
    by_number = {n["number"]: n for n in body["numbers"]}
    assert set(by_number) == {"+15550007001", "+15550007002"}
    one = by_number["+15550007001"]
    assert one["override"] == {"continue_on_external_transfer": False}
    assert one["sources"]["continue_on_external_transfer"] == "number:+15550007001"
    assert one["effective"]["retention_days"] == 45 and one["sources"]["retention_days"] == "account"
    assert by_number["+15550007002"]["override"] == {}
    assert (await world.request("GET", "/api/v1/accounts/nosuch/numbers", "admin")).status == 404


async def test_why_box_explains_every_value_and_the_transfer(world: World) -> None:
    await world.request("PUT", "/api/v1/accounts/why/settings", "admin", json={"continue_on_external_transfer": True})
    await world.request("PUT", "/api/v1/accounts/why/numbering", "admin", json={"internal": ["^2\\d{3}$"]})
    await world.request(
        "PUT",
        "/api/v1/numbers/%2B15550008001/override",
        "admin",
        json={"account": "why", "override": {"continue_on_external_transfer": False}},
    )
    q = {"direction": "inbound", "number": "+1 (555) 000-8001", "transfer_to": "+15557654321"}
    r = await world.request("GET", "/api/v1/policy/explain", "admin", params=q)
    assert r.status == 200
    out = await r.json()
    assert out["account"] == "why" and out["number"] == "+15550008001" and out["record"] is True
    assert out["sources"]["continue_on_external_transfer"] == "number:+15550008001"
    assert out["sources"]["record_inbound"] == "account"
    assert out["transfer"]["stop_recording"] is True and out["transfer"]["target_class"] == "external"
    assert "number:+15550008001" in out["transfer"]["decided_by"]
    internal = await (
        await world.request("GET", "/api/v1/policy/explain", "admin", params={**q, "transfer_to": "2002"})
    ).json()
    assert internal["transfer"]["stop_recording"] is False
    assert internal["transfer"]["matched_pattern"] == "^2\\d{3}$"
    bad = await world.request("GET", "/api/v1/policy/explain", "admin", params={**q, "number": "not a number"})
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "number"
    bad = await world.request("GET", "/api/v1/policy/explain", "admin", params={**q, "direction": "sideways"})
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "direction"
    unknown = await world.request("GET", "/api/v1/policy/explain", "admin", params={**q, "account": "nosuch"})
    assert unknown.status == 404
    message = (await unknown.json())["error"]["message"]
    assert "nosuch" in message and "why" in message  # names the account and lists the known ones


async def test_changes_are_audited_with_who_old_new_and_filterable(world: World) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    await world.request("PUT", "/api/v1/accounts/aud/settings", "admin", json={"record_outbound": True})
    await world.request("PUT", "/api/v1/accounts/aud/settings", "admin_nodl", json={"record_outbound": False})
    await world.request("PUT", "/api/v1/accounts/aud/numbering", "admin", json={"ring_groups": ["^6\\d{2}$"]})
    r = await world.request(
        "GET",
        "/api/v1/audit",
        "admin",
        params={"action": "settings.*", "target": "account:aud", "from": start.isoformat()},
    )
    entries = (await r.json())["entries"]
    assert [e["actor"] for e in entries] == ["user:admin_nodl", "user:admin"]  # newest first
    assert entries[0]["detail"] == {"old": {"record_outbound": True}, "new": {"record_outbound": False}}
    assert entries[0]["remote"] == "127.0.0.1"
    r = await world.request("GET", "/api/v1/audit", "admin", params={"actor": "user:admin", "target": "account:aud"})
    assert {e["action"] for e in (await r.json())["entries"]} == {"settings.update", "numbering.update"}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await world.request("GET", "/api/v1/audit", "admin", params={"target": "account:aud", "from": later})
    assert (await r.json())["entries"] == []
    r = await world.request("GET", "/api/v1/audit", "admin", params={"target": "account:aud", "to": start.isoformat()})
    assert (await r.json())["entries"] == []
    r = await world.request("GET", "/api/v1/audit", "admin", params={"from": "yesterday"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "from"


@pytest.mark.parametrize("listen_on", ["own connection", "pool connection"])
async def test_a_running_policy_cache_sees_a_change_at_once(
    world: World, api_dsn: str, monkeypatch: pytest.MonkeyPatch, listen_on: str
) -> None:
    """The recorder's policy (service.PolicyCache) reloads on the database's notification: with the
    fallback poll pushed to a minute, a number override is still seen within seconds."""
    monkeypatch.setattr(service, "POLICY_REFRESH_SECONDS", 60.0)
    await world.pool.execute("DELETE FROM numbers WHERE number = '+15550006001'")
    cache = service.PolicyCache(world.pool, listen_dsn=api_dsn if listen_on == "own connection" else "")
    task = asyncio.create_task(cache.run())
    try:
        for _ in range(250):
            if cache.loads >= 1:
                break
            await asyncio.sleep(0.02)
        assert cache.loads >= 1
        r = await world.request(
            "PUT",
            "/api/v1/numbers/%2B15550006001/override",
            "admin",
            json={"account": "main", "override": {"continue_on_external_transfer": False}},
        )
        assert r.status == 200
        for _ in range(250):
            found = cache.current.numbers.get("+15550006001")
            if found is not None:
                break
            await asyncio.sleep(0.02)
        assert found is not None and found[1].continue_on_external_transfer is False
        decision = cache.current.resolve(direction="inbound", number="+15550006001", account="main")
        assert decision.should_stop_on_transfer("+15557654321")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sharing_limits(world: World) -> None:
    cur = await (await world.request("GET", "/api/v1/sharing", "agent_2001")).json()
    assert cur["default_hours"] >= 1
    r = await world.request("PUT", "/api/v1/sharing", "admin", json={"default_hours": 500, "max_hours": 48})
    assert r.status == 422 and (await r.json())["error"]["field"] == "default_hours"
    r = await world.request("PUT", "/api/v1/sharing", "admin", json={"max_hours": 0})
    assert r.status == 422 and (await r.json())["error"]["field"] == "max_hours"
    r = await world.request("PUT", "/api/v1/sharing", "sup_mixed", json={"max_hours": 48})
    assert r.status == 403
    r = await world.request("PUT", "/api/v1/sharing", "admin", json={"max_hours": 72, "version": cur["version"]})
    assert r.status == 200 and (await r.json())["max_hours"] == 72
    r = await world.request("PUT", "/api/v1/sharing", "admin", json={"max_hours": 96, "version": cur["version"]})
    assert r.status == 409


async def test_record_consultation_is_a_setting_with_number_overrides(world: World) -> None:
    """The account setting `record_consultation` (migration 008): off by default, set over the API like
    the others, overridden per number, and explained in the "why" of a number."""
    r = await world.request("PUT", "/api/v1/accounts/cons/settings", "admin", json={})
    body = await r.json()
    assert (body["settings"]["record_consultation"], body["defaults"]["record_consultation"]) == (False, False)
    r = await world.request("PUT", "/api/v1/accounts/cons/settings", "admin", json={"record_consultation": True})
    body = await r.json()
    assert body["settings"]["record_consultation"] is True and body["sources"]["record_consultation"] == "account"
    bad = await world.request("PUT", "/api/v1/accounts/cons/settings", "admin", json={"record_consultation": "yes"})
    assert bad.status == 422 and "record_consultation" in (await bad.json())["error"]["message"]
    path = "/api/v1/numbers/+15557000188/override"
    r = await world.request("PUT", path, "admin", json={"account": "cons", "override": {"record_consultation": False}})
    num = await r.json()
    assert num["effective"]["record_consultation"] is False
    assert num["sources"]["record_consultation"] == "number:+15557000188"


async def test_phone_settings_through_the_api_name_the_bad_field(world: World) -> None:
    """Secure pause, record on demand and the consent announcement are account settings (and number
    overrides) like the others: saved, shown with their sources, refused with a 422 naming the field."""
    path = "/api/v1/accounts/phoneset/settings"
    bad = await world.request("PUT", path, "admin", json={"announcement": "prompt"})
    assert bad.status == 422 and (await bad.json())["error"]["field"] == "announcement_prompt"
    bad = await world.request("PUT", path, "admin", json={"announcement": "loud"})
    assert bad.status == 422 and (await bad.json())["error"]["field"] == "announcement"
    body = {"announcement": "periodic", "announcement_interval_seconds": 20, "pause_max_seconds": 90}
    ok = await world.request("PUT", path, "admin", json=body)
    assert ok.status == 200
    view = await ok.json()
    assert {k: view["settings"][k] for k in body} == body
    assert view["sources"]["announcement"] == "account" and view["defaults"]["announcement"] == "none"
    num = "/api/v1/numbers/%2B15550009950/override"
    r = await world.request("PUT", num, "admin", json={"account": "phoneset", "override": {"pause_max_seconds": -5}})
    assert r.status == 422 and (await r.json())["error"]["field"] == "pause_max_seconds"
    r = await world.request("PUT", num, "admin", json={"account": "phoneset", "override": {"announcement": "beep"}})
    assert r.status == 200 and (await r.json())["override"] == {"announcement": "beep"}
