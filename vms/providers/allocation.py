"""The allocation queue's arithmetic: ready times along a FIFO queue with removals.

Ready times along the queue follow ready_k = max(req_k, ready_{k-1}) + I,
starting from x0 = the moment the allocator is free for the head. Each VM is
the function x -> max(req + I, x + I) and a removed VM is the identity;
compositions of such functions stay of the form x -> max(a, x + I * c) where
c counts the VMs in the range. A segment tree over queue positions holds
(a, c) per node, so removing a VM anywhere (a stop) is one O(log n) update
and any VM's ready time, "how many ready by t" and "when is the allocator
free" are O(log n) queries, whatever the queue length.

Kept apart from the fake because it is pure arithmetic on integers (no
clock, no ids, no lock): it can be read and checked on its own.
"""

from __future__ import annotations

from vms.providers.instants import NEG

__all__ = ["ChainTree"]


class ChainTree:
    def __init__(self, capacity: int, interval_us: int):
        self.cap = capacity
        self.interval = interval_us
        self.a = [NEG] * (2 * capacity)
        self.c = [0] * (2 * capacity)

    def set(self, pos: int, a: int, c: int) -> None:
        A, C, step = self.a, self.c, self.interval
        i = pos + self.cap
        A[i], C[i] = a, c
        i >>= 1
        while i:
            left = i << 1
            right = left | 1
            # first the left range, then the right one
            left_then = A[left] + step * C[right]
            A[i] = A[right] if A[right] > left_then else left_then
            C[i] = C[left] + C[right]
            i >>= 1

    def rebuild(self) -> None:
        A, C, step = self.a, self.c, self.interval
        for i in range(self.cap - 1, 0, -1):
            left = i << 1
            right = left | 1
            A[i] = max(A[right], A[left] + step * C[right])
            C[i] = C[left] + C[right]

    def prefix(self, pos: int) -> tuple[int, int]:
        """(a, c) of the composition of positions 0..pos (inclusive)."""
        A, C, step = self.a, self.c, self.interval
        la, lc, ra, rc = NEG, 0, NEG, 0
        lo, hi = self.cap, self.cap + pos + 1
        while lo < hi:
            if lo & 1:
                la, lc = max(A[lo], la + step * C[lo]), lc + C[lo]
                lo += 1
            if hi & 1:
                hi -= 1
                ra, rc = max(ra, A[hi] + step * rc), C[hi] + rc
            lo >>= 1
            hi >>= 1
        return max(ra, la + step * rc), lc + rc

    def total(self) -> tuple[int, int]:
        return self.a[1], self.c[1]

    def count_ready_by(self, x0: int, t: int) -> int:
        """How many queued VMs are ready at ``t`` when the allocator is free at ``x0``.

        Ready times increase along the queue, so descend towards the last VM
        ready by ``t``: a whole left subtree is ready iff its last VM is.
        """
        A, C, step = self.a, self.c, self.interval
        if max(A[1], x0 + step * C[1]) <= t:
            return C[1]
        node, fa, fc = 1, NEG, 0
        while node < self.cap:
            left = node << 1
            na, nc = max(A[left], fa + step * C[left]), fc + C[left]
            if max(na, x0 + step * nc) <= t:
                fa, fc, node = na, nc, left | 1
            else:
                node = left
        na, nc = max(A[node], fa + step * C[node]), fc + C[node]
        return nc if max(na, x0 + step * nc) <= t else fc
