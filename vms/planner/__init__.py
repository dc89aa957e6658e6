"""The VM planner: pure functions from (exams, VMs, provider queue, now) to a plan.

No ORM, no I/O, no clock: everything comes in as frozen dataclasses and plain
integers, so the live loop, the simulation, the API and the tests all get the
same answer for the same inputs. Times are integer **milliseconds** since the
epoch (``vms.planner.times``): the model adds 6 s tens of thousands of times
and compares instants for equality (a VM ready exactly at the exam's start
counts), which floats would get wrong.

The provider model this plans for (see ``vms.providers``): one FIFO
allocation queue, one VM allocated at a time, ``I`` = 6 s each, so a VM
requested at ``t`` when the allocator is free at ``A`` is ready at
``max(t, A) + I``. A request therefore occupies a *slot* ``[s, s + I]`` of
allocator time, and a plan is a set of non-overlapping slots.

Cost per planning pass: O(E log E + V) for E exams and V live VMs; the planned
requests themselves are *runs* - first slot, count, spacing - so 1,000 exams
of 2,500 students are 1,000 runs, not 2.5 million slots.

``plan()`` below is the driver: it runs the named phases, in order, over one
``PassState`` (``vms.planner.state``) that lives for the call. Each phase
decides one thing (its docstring says what and why):

1. live VMs (``live``): ``classify_live_vms`` stops VMs of ended exams, used
   VMs of deleted or moved exams and pending stops, commits the VMs of
   started exams, collects the *fresh* ones; ``trim_started_exams`` stops a
   started exam's surplus and its queued VMs too late to help;
2. ``settle_queue``: the provider's FIFO without the VMs being stopped gives
   ``A``, when the allocator is free for new slots;
3. on time (``on_time``): ``share_fresh_vms`` (each future exam keeps its own
   fresh VMs ready by its deadline ``D = start - margin``, the rest is the
   pool), ``count_on_time`` (feasibility, earliest deadline first: new slots,
   then pool VMs, then fresh VMs of later exams), ``place_runs_alap`` (one
   run per exam as late as possible, latest deadline first, with the two
   cost trades: a pool VM instead of a slot, the release of VMs parked far
   too early), ``stop_spare_vms`` (what nobody took);
4. late (``late``): ``free_gaps``, ``late_needs``, ``place_late_vms``: VMs that
   cannot be ready by ``D`` go in the gaps between on-time runs while they
   are still useful before the exam ends;
5. assembly (``assemble``): ``pace_runs`` (early requests into a busy FIFO,
   queue ahead), ``exam_plans``, ``assigns``, ``ordered_stops`` (pending
   first, then VMs still queued, then ready VMs protecting an upcoming
   start, then teardown, earliest end first), ``next_event_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable

from vms.planner.assemble import assigns, exam_plans, next_event_ms, ordered_stops, pace_runs
from vms.planner.chart import timeline
from vms.planner.late import free_gaps, late_needs, place_late_vms
from vms.planner.live import classify_live_vms, settle_queue, trim_started_exams
from vms.planner.on_time import count_on_time, place_runs_alap, share_fresh_vms, stop_spare_vms
from vms.planner.state import PassState
from vms.planner.times import SECOND_MS, from_ms, iso_ms, to_ms, to_ms_floor
from vms.planner.types import (
    STOP_ENDED,
    STOP_ORPHAN,
    STOP_PENDING,
    STOP_RELEASE,
    STOP_SURPLUS,
    STOP_USED,
    STOP_USELESS,
    Assign,
    ExamIn,
    ExamPlan,
    Plan,
    PlannerConfig,
    Run,
    Stop,
    VmIn,
)

__all__ = [
    "SECOND_MS",
    "STOP_ENDED",
    "STOP_ORPHAN",
    "STOP_PENDING",
    "STOP_RELEASE",
    "STOP_SURPLUS",
    "STOP_USED",
    "STOP_USELESS",
    "Assign",
    "ExamIn",
    "ExamPlan",
    "Plan",
    "PlannerConfig",
    "Run",
    "Stop",
    "VmIn",
    "from_ms",
    "iso_ms",
    "plan",
    "timeline",
    "to_ms",
    "to_ms_floor",
]


def plan(*, exams: Iterable[ExamIn], vms: Iterable[VmIn], now_ms: int, config: PlannerConfig) -> Plan:
    """One planning pass: the phases above, in order (each reads what the
    earlier ones decided); the same inputs always give the same plan."""
    st = PassState(exams=exams, now_ms=now_ms, config=config)
    queue, fresh, committed = classify_live_vms(st, vms)
    trim_started_exams(st, committed)
    ready_of = settle_queue(st, queue)
    share_fresh_vms(st, fresh, ready_of)
    count_on_time(st)
    place_runs_alap(st)
    stop_spare_vms(st)
    place_late_vms(st, free_gaps(st), late_needs(st))
    runs = pace_runs(st)
    return Plan(
        now_ms=now_ms,
        allocator_free_ms=st.allocator_free,
        exams=exam_plans(st, runs),
        runs=tuple(runs),
        stops=ordered_stops(st),
        assigns=assigns(st),
        next_event_ms=next_event_ms(st),
    )
