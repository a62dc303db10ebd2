"""The phone-feature settings (issue #14): secure pause, record on demand and the consent
announcement, per account and number — validated with errors that name the field, stored through
migration 009 on real PostgreSQL, exported to and imported from the settings file, and served by
the settings API with 422s that name the field."""

from __future__ import annotations

import asyncpg
import pytest

from controller.policy import Account, NumberOverride, PolicyError, PolicySet, settings_from_dict
from controller.settings_file import dump_settings, parse_settings
from storage import repo

PHONE = {
    "pause_max_seconds": 120,
    "agent_record_on_demand": True,
    "announcement": "prompt",
    "announcement_interval_seconds": 45,
    "announcement_prompt": "custom/consent",
    "announcement_after_resume": True,
}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"pause_max_seconds": -1}, "pause_max_seconds", "0 to 86400"),
        ({"pause_max_seconds": True}, "pause_max_seconds", "whole number"),
        ({"announcement": "loud"}, "announcement", "none, beep, prompt, periodic"),
        ({"announcement_interval_seconds": 0}, "announcement_interval_seconds", "1 to 3600"),
        ({"announcement_prompt": "my consent.wav"}, "announcement_prompt", "without spaces"),
        ({"announcement": "prompt"}, "announcement_prompt", "needed when announcement = prompt"),
        ({"agent_record_on_demand": "yes"}, "agent_record_on_demand", "true or false"),
    ],
)
def test_bad_values_name_the_field(change: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(PolicyError) as e:
        settings_from_dict(change)
    assert e.value.field == field and says in str(e.value)


def test_numbers_override_each_phone_setting_and_the_file_round_trips() -> None:
    ps = PolicySet(
        accounts={"main": Account("main", settings_from_dict(PHONE))},
        numbers={"+15557000150": ("main", NumberOverride(announcement="beep", pause_max_seconds=0))},
    )
    d = ps.resolve(direction="inbound", number="+15557000150")
    assert (d.settings.announcement, d.sources["announcement"]) == ("beep", "number:+15557000150")
    assert (d.settings.pause_max_seconds, d.settings.announcement_prompt) == (0, "custom/consent")
    text = dump_settings(ps)
    assert 'announcement_prompt = "custom/consent"' in text
    assert parse_settings(text) == ps


async def test_stored_through_migration_009_and_served_back(pool: asyncpg.Pool) -> None:
    saved = await repo.put_account_settings(pool, "phone-settings", PHONE)
    assert (await repo.get_account_settings(pool, "phone-settings")) == saved
    loaded = (await repo.load_policy_set(pool)).accounts["phone-settings"].settings
    assert {k: getattr(loaded, k) for k in PHONE} == PHONE
    with pytest.raises(PolicyError):
        await repo.put_account_settings(pool, "phone-settings", {"announcement": "none", "announcement_prompt": "a b"})
    assert (await repo.get_account_settings(pool, "phone-settings")) == saved  # nothing half-written
