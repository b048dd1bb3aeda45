"""A command's own process (a recipe's, a rank's): its start-up and its exit without Python's cyclic garbage
collector walking the objects of the imported modules.

Importing torch, torchrl, tensordict and gymnasium leaves ~360,000 objects that live as long as the process,
and each full pass of the collector walks all of them: ~0.5 s of passes while they are imported and ~0.9 s
when the interpreter exits (2-core reference CPU, docs/speed.md), 10% of a 100k-step CartPole run, for objects
that are never garbage. So a process that is the command's own

1. turns the collector off while it starts (:func:`start_up`, first thing; it also begins the first look at the
   free cores, :func:`ppo_pipeline.threads.look_from_now`);
2. once training starts, freezes what start-up built (:func:`started`: ``gc.freeze`` moves it out of every
   later pass) and turns the collector on again for what training allocates;
3. freezes again before it exits (:func:`exiting`), so the interpreter's last passes walk nothing old.

Importing the package does none of this, and a user's Python that calls :func:`ppo_pipeline.train` keeps its
collector as it is (:func:`started` does nothing unless :func:`start_up` ran in the process).
"""

from __future__ import annotations

import gc

_starting = False  # start_up() turned the collector off, and started() has not turned it on yet


def start_up() -> None:
    """The collector off until :func:`started` (nothing where something else turned it off already), and the
    first look at the free cores begun (:func:`ppo_pipeline.threads.look_from_now`: a run's ``Threads`` then
    settles on the start-up's look without waiting)."""
    global _starting
    if gc.isenabled():
        gc.disable()
        _starting = True
    from . import threads  # (torch with it: after the collector is off)

    threads.look_from_now()


def started() -> None:
    """Start-up's objects frozen out of the collector's passes, the collector on again (where :func:`start_up`
    turned it off; otherwise nothing)."""
    global _starting
    if _starting:
        _starting = False
        gc.freeze()
        gc.enable()


def exiting() -> None:
    """Everything alive frozen, so that the interpreter's exit walks no old objects (the process ends next)."""
    started()
    gc.freeze()


def starting() -> bool:
    """Whether :func:`start_up` turned the collector off and :func:`started` has not run since (for tests)."""
    return _starting
