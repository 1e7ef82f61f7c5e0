"""The worker's merge of the three input topics of a partition: event-time order, waiting for quiet topics, and
flow control by bytes held."""

from __future__ import annotations

from streams.runners.merge import EventTimeMerger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def merger(clock: Clock, wait_s: float = 2.0, max_bytes: int = 1000) -> EventTimeMerger[str]:
    return EventTimeMerger(["v", "f", "l"], wait_s=wait_s, max_bytes=max_bytes, clock=clock)


def test_release_is_in_event_time_and_a_topic_with_more_on_the_broker_holds_however_long() -> None:
    clock = Clock()
    m = merger(clock)
    for ts in (10, 20, 30):
        m.add("f", ts, f"f{ts}")
    clock.now = 100.0
    assert m.release(has_more={"v"}) == []  # v may still bring something older than 10
    m.add("v", 15, "v15")
    clock.now = 101.0
    assert m.release() == ["f10"]  # l has been quiet for 101 s; v15 arrived 1 s ago and waits for l
    assert m.blocked_by() == ["l"]
    clock.now = 102.0
    assert m.release() == ["v15", "f20", "f30"]
    assert m.blocked_by() == [] and len(m) == 0


def test_a_quiet_topic_holds_for_wait_s_after_it_or_the_head_last_spoke() -> None:
    clock = Clock()
    m = merger(clock)
    m.add("l", 5, "l5")
    clock.now = 1.0
    m.add("f", 20, "f20")
    m.add("v", 10, "v10")
    assert m.release() == ["l5"]  # then l is empty: v10 arrived at 1 s and waits for it
    clock.now = 2.5
    assert m.release() == []
    clock.now = 3.0  # v10 has waited 2 s, l spoke 3 s ago; f20 arrived with v10, v spoke at 1 s
    assert m.release() == ["v10", "f20"]


def test_an_old_message_of_the_quiet_topic_goes_first() -> None:
    clock = Clock()
    m = merger(clock, wait_s=0.0)
    m.add("v", 40, "v40")
    m.add("f", 30, "f30")
    m.add("l", 5, "l5")  # an old note from the quiet topic
    assert m.release() == ["l5", "f30", "v40"]


def test_ties_go_in_topic_order_then_arrival() -> None:
    clock = Clock()
    m: EventTimeMerger[str] = EventTimeMerger(["v", "f"], wait_s=0.0, clock=clock)
    m.add("f", 7, "f-a")
    m.add("v", 7, "v-a")
    m.add("f", 7, "f-b")
    assert m.release() == ["v-a", "f-a", "f-b"]


def test_over_the_byte_budget_the_topics_ahead_are_paused_and_resumed_when_drained_or_under_half() -> None:
    clock = Clock()
    m = merger(clock, max_bytes=1000)
    for ts in range(10):
        m.add("v", 100 + ts, f"v{ts}", size=150)  # vibration far ahead; frames and logs quiet but holding
    assert m.release() == [] and m.bytes == 1500 and m.max_bytes_seen == 1500
    assert m.flow() == ({"v"}, set()) and m.paused == {"v"}
    assert m.flow() == ({"v"}, set())  # named again while over: a rebalance may have resumed it
    clock.now = 5.0
    m.add("f", 104, "f104", size=10)
    m.add("l", 200, "l200", size=10)
    assert m.release() == ["v0", "v1", "v2", "v3", "v4", "f104"]  # a tie goes to v; then f is empty: v5 waits
    assert m.bytes == 760
    assert m.flow() == (set(), set())  # under the budget, not under half, v still buffered: stays paused
    clock.now = 7.0
    assert m.release() == [f"v{i}" for i in range(5, 10)]  # l200 waits: v is paused, its silence says nothing
    assert m.flow() == (set(), {"v"}) and m.paused == set() and m.bytes == 10
    clock.now = 8.5
    assert m.release() == []  # resumed at 7 s, v counts as having spoken then
    clock.now = 9.0
    assert m.release() == ["l200"] and m.bytes == 0


def test_a_topic_paused_with_nothing_buffered_holds_the_others_until_it_is_resumed() -> None:
    """Frames behind vibration, paused because they had messages buffered when the budget was crossed: once they
    drained, vibration must not run ahead of them, however long the pause lasts (the worker stopped their fetch)."""
    clock = Clock()
    m = merger(clock, max_bytes=100)
    m.add("f", 10, "f10", size=30)
    m.add("v", 50, "v50", size=80)
    assert m.flow() == ({"f", "v"}, set())
    m.add("l", 5, "l5", size=0)
    clock.now = 3.0
    assert m.release() == ["l5", "f10"]  # f drained while paused
    clock.now = 60.0
    assert m.release() == []  # f is still paused: v50 waits, however long
    assert m.flow() == (set(), {"f"})  # f has nothing buffered: resumed
    clock.now = 61.0
    assert m.release() == []  # resumed at 60 s, f counts as having spoken then
    m.add("f", 40, "f40", size=30)
    clock.now = 63.5
    assert m.release() == ["f40", "v50"]  # f quiet since 61 s, l since 0 s


def test_a_paused_topic_whose_buffer_drained_is_resumed_even_over_half() -> None:
    clock = Clock()
    m = merger(clock, max_bytes=100)
    m.add("v", 10, "v10", size=80)
    m.add("f", 20, "f20", size=80)
    assert m.release() == []  # l holds both
    assert m.flow() == ({"v", "f"}, set())
    m.add("l", 15, "l15", size=0)
    assert m.release() == ["v10"]  # v is empty now and holds l15 and f20
    assert m.flow() == (set(), {"v"})  # 80 bytes held, more than half, but v has nothing buffered
    assert m.paused == {"f"} and m.event_time() == {"f": 20, "l": 15}
