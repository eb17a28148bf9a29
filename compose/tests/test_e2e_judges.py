"""The judges compose/e2e applies to Prometheus' series, on made-up series: each accepts
what a faithful scrape looks like and rejects, naming why, what it must not accept."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

import stack  # noqa: E402

FAULT, HEAL, END = 100.0, 106.0, 110.0


def series(pairs):
    """One value per second from t=90 to t=115: `pairs` gives (from_t, value) steps."""
    out, value = [], None
    for t in range(90, 116):
        for start, v in pairs:
            if t >= start:
                value = v
        out.append((float(t), value))
    return out


def test_link_held_accepts_pass_hold_pass():
    # Scrapes every 2 s: hold seen from t=102, pass again from t=108.
    assert stack.link_held_problems(series([(90, 0), (102, 1), (108, 0)]), FAULT, HEAL, END + 5) == []


def test_link_held_rejects_a_link_that_was_never_held():
    problems = stack.link_held_problems(series([(90, 0)]), FAULT, HEAL, END + 5)
    assert problems == ["during the fault: values [0], expected 1"]


def test_link_held_rejects_a_link_held_before_the_fault():
    problems = stack.link_held_problems(series([(90, 1), (108, 0)]), FAULT, HEAL, END + 5)
    assert problems == ["before the fault: values [1], expected 0"]


def test_link_held_rejects_a_link_still_held_after_the_heal():
    problems = stack.link_held_problems(series([(90, 0), (102, 1)]), FAULT, HEAL, END + 5)
    assert problems == ["after the heal: values [1], expected 0"]


def test_link_held_rejects_a_reset_instead_of_a_hold():
    problems = stack.link_held_problems(series([(90, 0), (102, 2), (108, 0)]), FAULT, HEAL, END + 5)
    assert problems == ["during the fault: values [2], expected 1"]


def test_link_held_with_no_samples_is_not_accepted():
    problems = stack.link_held_problems([], FAULT, HEAL, END + 5)
    assert problems == ["no sample before the fault", "no sample during the fault", "no sample after the heal"]


def leaders(new_leader_from=103, old_steps_down_at=102, new="etcd2"):
    return {
        "etcd1": series([(90, 1), (old_steps_down_at, 0)]),
        "etcd2": series([(90, 0)] + ([(new_leader_from, 1)] if new == "etcd2" else [])),
        "etcd3": series([(90, 0)] + ([(new_leader_from, 1)] if new == "etcd3" else [])),
    }


def test_leader_moved_accepts_a_new_leader_on_the_majority():
    assert stack.leader_moved_problems(leaders(), "etcd1", FAULT, HEAL) == []


def test_leader_moved_rejects_an_old_leader_that_never_stepped_down():
    problems = stack.leader_moved_problems(leaders(old_steps_down_at=200), "etcd1", FAULT, HEAL)
    assert problems == ["etcd1 still leads at the end of the hold: [1, 1]"]


def test_leader_moved_rejects_a_majority_without_a_leader():
    problems = stack.leader_moved_problems(leaders(new=None), "etcd1", FAULT, HEAL)
    assert len(problems) == 1 and problems[0].startswith("expected one new leader at the end of the hold, got []")


def test_leader_moved_rejects_the_wrong_old_leader():
    problems = stack.leader_moved_problems(leaders(), "etcd3", FAULT, HEAL)
    assert problems[0].startswith("etcd3 was not the leader just before the fault")


def test_leader_moved_rejects_a_missing_series():
    assert stack.leader_moved_problems({}, "etcd1", FAULT, HEAL) == [
        "no rift_cluster_leader series for etcd1 (have [])"
    ]
