"""`bench/load.py` against the launched app on the bundled preset: its figures, checked (run by `.ci/run`)."""

from __future__ import annotations

import pytest

from bench import load

pytestmark = pytest.mark.load


def test_concurrent_clients_overflow_and_a_long_run_lose_nothing(tmp_path):
    concurrent, overflow, sequential = load.main(["--clients", "32", "--jobs-per-client", "3", "--sequential", "300",
                                                  "--out", str(tmp_path)])  # fmt: skip
    assert (concurrent["ok"], concurrent["failed"]) == (96, 0), concurrent
    # a full queue refuses with a message; every request is answered, none fails or is lost
    assert overflow["failed"] == 0 and overflow["ok"] + overflow["queue full"] == 32 and overflow["queue full"] > 0, overflow
    assert (sequential["ok"], sequential["failed"]) == (300, 0), sequential
    assert sequential["rss_growth_after_warmup"] < 0.10, sequential
    assert (tmp_path / "load.jsonl").read_text().count('"machine"') == 3
