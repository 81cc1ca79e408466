"""A watcher's buffer: every event while it keeps up or is merely a few behind; once it
is `limit` behind, progress coalesces into the last progress, and nothing else ever does."""

from __future__ import annotations

from server.events import EventBus, Subscription
from server.jobs import EventType
from server.store import JobEvent
from server.store.models import utcnow


def event(sequence: int, kind: EventType = EventType.PROGRESS) -> JobEvent:
    return JobEvent(job_id="j", sequence=sequence, type=kind.value,
                    snapshot={"sequence": sequence}, created_at=utcnow())


async def drained(subscription: Subscription) -> list[int]:
    return [(await subscription.get()).sequence for _ in range(len(subscription))]


async def test_a_watcher_a_few_events_behind_gets_every_progress_event() -> None:
    subscription = Subscription("j", limit=8)
    for sequence in range(1, 8):
        subscription.push(event(sequence))
    assert await drained(subscription) == [1, 2, 3, 4, 5, 6, 7]
    assert subscription.coalesced == 0


async def test_a_full_buffer_coalesces_progress_into_its_last_event() -> None:
    subscription = Subscription("j", limit=4)
    for sequence in range(1, 11):
        subscription.push(event(sequence))
    assert await drained(subscription) == [1, 2, 3, 10]
    assert subscription.coalesced == 6


async def test_phase_changes_and_the_end_are_never_coalesced_or_dropped() -> None:
    subscription = Subscription("j", limit=4)
    kinds = [EventType.PROGRESS] * 5 + [EventType.PHASE_CHANGED] + [EventType.PROGRESS] * 5
    kinds += [EventType.AWAITING_REVIEW, EventType.RESUMED, EventType.COMPLETED]
    for sequence, kind in enumerate(kinds, start=1):
        subscription.push(event(sequence, kind))
    kept = await drained(subscription)
    assert [s for s in kept if kinds[s - 1] != EventType.PROGRESS] == [6, 12, 13, 14]
    # Bounded: the limit, plus each event never merged and one progress after it.
    assert kept == [1, 2, 3, 5, 6, 11, 12, 13, 14]


def test_the_bus_gives_each_watcher_its_configured_buffer() -> None:
    bus = EventBus(buffer=5)
    with bus.subscribe("j") as subscription:
        assert subscription.limit == 5
