"""CPU threads of a run's torch computations: as many as the cores that are free, checked as the run goes.

torch starts one intra-op (OpenMP) thread per core. That is fastest for a run alone, and slowest when two
runs share the cores: OpenMP threads that wait spin, so two runs of 2 threads on 2 cores slow each other
down far more than the cores they share (README, Speed: measured 1.8x the wall time of the same two runs
one after the other). So by default (``--torch-threads 0``) a run counts the cores the *other* processes of
the machine keep busy -- from ``/proc/stat``, less the CPU time of this run's own processes (itself and its
env workers) -- and uses the rest: at start (over a short look, or since the command started where its process
called :func:`look_from_now`) and again every few seconds between updates, so two runs started together settle
on one thread each and the one left alone goes back to all cores. A run whose torch calls are small takes at most one (:meth:`Threads.limit`; the rule:
:func:`ppo_pipeline.algo.ppo.one_thread_pays`). ``--torch-threads N`` forces N; under SLURM the allocation
(``SLURM_CPUS_PER_TASK``) is the run's.
Where ``/proc`` is not there (not Linux), one thread per core, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CHECK_EVERY_S = 2.0  # how often a run looks again (at the end of an update)
FIRST_LOOK_S = 0.1  # how long it looks before it starts
BUSY_FRACTION = 0.5  # a core counts as taken when others keep it this busy on average


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_busy_ticks() -> int | None:
    """Clock ticks all CPUs spent busy since boot (``/proc/stat``), None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return sum(fields) - idle - guest


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, utime + stime + cutime + cstime) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def own_ticks(root: int | None = None) -> int:
    """Clock ticks spent by this process and all its descendants (env workers), reaped children included."""
    root = os.getpid() if root is None else root
    parent_of: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(name)
            if st is not None:
                parent_of[int(name)], ticks[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


_early_mark: tuple[float, int, int] | None = None  # look_from_now()'s, for the next Threads made


def _now() -> tuple[float, int, int]:
    return time.monotonic(), machine_busy_ticks() or 0, own_ticks()


def look_from_now() -> None:
    """Begin the first look now (a command's own process, as it starts): the next :class:`Threads`, made
    ``FIRST_LOOK_S`` or more later, settles on what the machine did since, without waiting (the look then spans
    the run's start-up; the process's own ticks are left out as always)."""
    global _early_mark
    if machine_busy_ticks() is not None:
        _early_mark = _now()


class Threads:
    """torch's intra-op thread count for one run: ``forced`` (> 0), SLURM's allocation, or the free cores."""

    def __init__(self, forced: int = 0):
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        self.fixed = forced or (int(slurm) if slurm.isdigit() and int(slurm) > 0 else 0)
        self.cores = cores()
        self.most = self.cores  # :meth:`limit`
        self.count = self.fixed or self.cores
        self._mark: tuple[float, int, int] | None = None
        if not self.fixed and machine_busy_ticks() is not None:
            global _early_mark
            early, _early_mark = _early_mark, None
            if early is not None and time.monotonic() - early[0] >= FIRST_LOOK_S:
                self._mark = early  # the look began when the command did (look_from_now): no wait
            else:
                self._mark = _now()
                time.sleep(FIRST_LOOK_S)
            self._settle()
        torch.set_num_threads(self.count)

    def _settle(self) -> None:
        """Threads = cores minus the cores others kept busy since the last look."""
        assert self._mark is not None  # set in __init__ before the first settle; check() looks first
        t0, busy0, own0 = self._mark
        t1, busy1, own1 = now = _now()
        self._mark = now
        seconds = (t1 - t0) * os.sysconf("SC_CLK_TCK")
        if seconds <= 0:
            return
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds  # cores' worth of other processes
        self.count = max(1, min(self.most, self.cores - int(others + (1 - BUSY_FRACTION))))

    def limit(self, most: int) -> None:
        """At most ``most`` threads from now on, where the count is the machine's to choose (neither forced nor
        SLURM's): a run whose torch calls are too small to gain from more."""
        if self.fixed:
            return
        self.most = max(1, most)
        if self.count > self.most:
            self.count = self.most
            torch.set_num_threads(self.count)

    def check(self) -> None:
        """Look again if ``CHECK_EVERY_S`` passed since the last look (call between updates); cheap otherwise."""
        if self._mark is None or time.monotonic() - self._mark[0] < CHECK_EVERY_S:
            return
        before = self.count
        self._settle()
        if self.count != before:
            torch.set_num_threads(self.count)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block, set back after (a pack's collection runs on one:
    its policy's small ops gain nothing from a parallel region, and the OpenMP workers that spin after each
    one take the cores envpool's own threads step the envs on -- measured in docs, Speed: Packs). None: as
    they are."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
