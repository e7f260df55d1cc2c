"""The partition simulation (bench.partition_sim): its invariants hold under faults,
and its checker catches each broken variant of the protocol."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.partition_sim import Params, main, simulate

pytestmark = pytest.mark.unit

# Small and faulty: many pauses past the lease TTL, crashes and expired reservations.
FAULTY = Params(
    partitions=3,
    duration=0.6,
    clients_per_partition=8,
    pause_share=0.05,
    crash_share=0.05,
    stall_share=0.2,
    hot_share=0.5,
    hot_emails=10,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("partitions", [1, 3])
def test_exactly_once_and_unique_emails_hold_under_faults(seed: int, partitions: int) -> None:
    stats, problems = simulate(replace(FAULTY, seed=seed, partitions=partitions))
    assert problems == []
    # The faults the protocol must survive did happen (else the test proves nothing).
    assert stats.takeovers > 0 and stats.pauses > 0 and stats.expired > 0
    assert stats.registered > 20 and stats.refused_emails > 0 and len(stats.acked) > 100


def test_crashed_and_zombie_writers_happen_across_seeds() -> None:
    runs = [simulate(replace(FAULTY, seed=seed))[0] for seed in (1, 2, 3)]
    assert sum(s.crashes for s in runs) > 0
    assert sum(s.zombie_refusals for s in runs) > 0  # refused by their fence


def test_a_seed_replays_the_same_run() -> None:
    first, _ = simulate(replace(FAULTY, seed=7))
    again, _ = simulate(replace(FAULTY, seed=7))
    assert first == again


def test_without_fencing_a_zombie_shares_positions_and_loses_acknowledged_events() -> None:
    _, problems = simulate(replace(FAULTY, seed=1, fencing=False))
    assert any("holds" in p for p in problems), problems
    assert any(p.startswith("acked") for p in problems), problems


def test_without_the_expiry_check_two_users_hold_one_email() -> None:
    problems = [
        p for seed in (1, 2, 3) for p in simulate(replace(FAULTY, seed=seed, expiry_check=False))[1]
    ]
    assert any("held by 2 users" in p for p in problems), problems


def test_the_script_fails_when_the_checker_finds_a_violation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--partitions", "1,2", "--duration", "0.2", "--seed", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("N  acked events")
    assert len(out.splitlines()) == 3
    assert main(["--partitions", "2", "--seed", "1", "--broken", "no-expiry-check"]) == 1
