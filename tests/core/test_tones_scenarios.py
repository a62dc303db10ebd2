"""The shared lab pieces: tone WAVs a user can check by ear/FFT, and scenario definitions."""

from __future__ import annotations

from pathlib import Path

from lab import scenarios
from lab.tones import AGENT_HZ, CUSTOMER_HZ, WavWriter, channel_timeline, read_wav


def test_stereo_wav_has_one_tone_per_channel_and_silence_when_masked(tmp_path: Path) -> None:
    w = WavWriter(tmp_path / "a.wav")
    w.write((CUSTOMER_HZ, AGENT_HZ), 1000)
    w.write((None, None), 500)
    w.write((CUSTOMER_HZ, 660), 1000)
    w.close()
    rate, channels, frames = read_wav(tmp_path / "a.wav")
    assert (rate, channels, len(frames)) == (8000, 2, 20000)
    tl = channel_timeline(tmp_path / "a.wav", 250)
    assert tl[:4] == [(440, 880)] * 4
    assert tl[4:6] == [(None, None)] * 2
    assert tl[6:] == [(440, 660)] * 4


def test_abandoned_wav_has_zero_sizes_but_is_readable(tmp_path: Path) -> None:
    w = WavWriter(tmp_path / "b.wav", channels=1)
    w.write((CUSTOMER_HZ,), 500)
    w.abandon()
    raw = (tmp_path / "b.wav").read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and raw[40:44] == b"\0\0\0\0"
    assert len(read_wav(tmp_path / "b.wav")[2]) == 4000


def test_scenarios_are_consistent() -> None:
    assert {"inbound", "outbound", "pause_resume", "unanswered"} <= set(scenarios.SCENARIOS)
    for sc in scenarios.SCENARIOS.values():
        assert isinstance(sc.steps[0], scenarios.PlaceCall)
        assert len(sc.expect.right_tones) == len(sc.expect.segments)
        for step in sc.steps:
            if isinstance(step, scenarios.Hangup):
                assert step.party in sc.parties
    ext_stop = scenarios.get("blind_transfer_external_stop")
    assert ext_stop.expect.ends_at_transfer and ext_stop.expect.segments == ("agent",)
    assert ext_stop.settings == {"continue_on_external_transfer": False}
