"""Ring group members outside PostgreSQL's bigint range are a 422 naming the field, not a 500
(found by schemathesis: members [-5e26])."""

from __future__ import annotations

import pytest

from tests.api.conftest import World


@pytest.mark.parametrize("member", [-502675344965887650479210496, 2**63, 0, -1])
async def test_member_ids_out_of_range_are_named(world: World, member: int) -> None:
    r = await world.request("POST", "/api/v1/ring-groups", "admin", json={"id": "range-x", "members": [member]})
    assert r.status == 422, await r.text()
    assert (await r.json())["error"]["field"] == "members"
