"""The optimizer step of a run of P members (a solo run: P = 1): P Adams over the stacked parameters, each
with its own gradient clip and step size.

After ``loss.backward()`` (the gradient of the sum of the members' losses: member p's slice is its own
gradient), one :meth:`MemberAdam.step`:

    g_p <- 0                                  for a member that diverged (dead): its non-finite gradient
                                              never reaches Adam
    g_p <- g_p * min(1, c / (||g_p|| + 1e-6))  torch's clip_grad_norm_, per member (c = max_grad_norm; never
                                              one norm across members)
    Adam(g)                                   elementwise over the stacked weights: P independent Adams
                                              (one member, P = 1: torch's clip_grad_norm_ arithmetic, op for
                                              op (:func:`clip_grad_norm`), and torch's Adam)
    theta_p <- theta_p' + (lr_p / lr - 1)(theta_p' - theta_p)
                                              only where the members' step sizes differ (the KL-adaptive step
                                              size of Table 4 moves per member): Adam's step scales linearly with
                                              its step size, so the step taken at lr = max_p lr_p is scaled back per
                                              member (equal to member p's own Adam up to float rounding)

One torch Adam (fused) does the last line; with ``compile`` the three lines run as one compiled function
(``torch.compile`` of the optimizer step, the torch way: the learning rate is a tensor so that the
schedule's new value each update is not a recompile). In a running pack of 33 (minibatch step):
CartPole 0.47 ms eager, 0.33 ms compiled; Hopper 0.37 ms, 0.25 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import compiling


def clip_grad_norm(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """torch's ``clip_grad_norm_`` (2-norm, its foreach path) for one member's gradients, op for op: the norm of
    the per-tensor norms, then every gradient times min(1, c / (norm + 1e-6)); returns the norm.

    torch's function groups the tensors by device and dtype twice and enters three no-grad wrappers: on a run's
    13 small tensors that Python is half its time (~75 of ~150 us an Adam step, 2026-12-03). A run's parameters
    share one device and dtype, so here the group is the list. ``tests/test_optim.py`` holds it bit-equal to
    torch's (norm and clipped gradients)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def clip_grad_norm_per_member(params: Sequence[torch.Tensor], max_norm: float, members: int) -> torch.Tensor:
    """torch's ``clip_grad_norm_`` for each member's slice of the stacked gradients; returns the norms [P]."""
    sq = sum(p.grad.detach().pow(2).reshape(members, -1).sum(1) for p in params if p.grad is not None)
    assert isinstance(sq, torch.Tensor)  # not the 0 of an empty sum: the update gave the parameters gradients
    norm = sq.sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(coef.view(members, *([1] * (p.grad.dim() - 1))))
    return norm


class MemberAdam:
    """Zero a dead member's gradient, clip each member's gradient norm, one Adam step (module docstring).

    ``params``: stacked parameters, member axis first (P = 1: the solo parameters as they are). ``clip`` is the
    per-member clip (a test swaps in a global one to see it caught)."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        members: int,
        *,
        lr: float,
        eps: float,
        max_grad_norm: float,
        compile: bool = False,
        clip: Callable[..., Any] = clip_grad_norm_per_member,
    ):
        self.params, self.members, self.max_grad_norm, self.clip = list(params), members, max_grad_norm, clip
        device = self.params[0].device
        lr_t = torch.tensor(float(lr), device=device)  # on the weights' device (fused CUDA reads it)
        self.optimizer = torch.optim.Adam(self.params, lr=lr_t, eps=eps, fused=True)
        self.scale = torch.ones(members, device=device)  # lr_p / lr where the members' step sizes differ
        self.per_member = False
        # static shapes: the stacked weights never change shape (dynamo's dynamic-shape trace of the optimizer
        # fails, "sources must not be empty", when a second MemberAdam of other shapes compiles in one process)
        self._step = compiling.MaybeCompiled(self._apply, compile, "Adam step", dynamic=False)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's step size for the next steps, written into the tensors the (compiled) step reads."""
        top = max(lrs)
        for group in self.optimizer.param_groups:
            group["lr"].fill_(top)
        self.per_member = any(x != top for x in lrs)
        if self.per_member:
            self.scale.copy_(torch.tensor([x / top for x in lrs]))

    def zero_grad(self) -> None:
        """Drop the gradients: ``Optimizer.zero_grad(set_to_none=True)``'s effect, without its profiler label and
        per-group loop (~30 us a minibatch on a solo MLP run)."""
        for p in self.params:
            p.grad = None

    def step(self, dead: torch.Tensor | None = None) -> None:
        """One step of every member; ``dead`` [P] bool: members whose gradient must not reach Adam."""
        self._step(dead)

    def _apply(self, dead: torch.Tensor | None) -> None:
        if dead is not None:
            for p in self.params:
                assert p.grad is not None  # backward gave every stacked parameter its gradient
                p.grad.masked_fill_(dead.view(-1, *([1] * (p.dim() - 1))), 0)
        if self.max_grad_norm > 0:
            if self.members == 1:
                clip_grad_norm(self.params, self.max_grad_norm)
            else:
                self.clip(self.params, self.max_grad_norm, self.members)
        if not self.per_member:
            self.optimizer.step()
            return
        before = [p.detach().clone() for p in self.params]
        self.optimizer.step()
        with torch.no_grad():
            for p, b in zip(self.params, before):
                p.copy_(torch.lerp(b, p, self.scale.view(-1, *([1] * (p.dim() - 1)))))

    # --- checkpoint state (torch's Adam state_dict, the learning rate as a float: the format solo runs read) --
    def state_dict(self) -> dict[str, Any]:
        state = self.optimizer.state_dict()
        state["param_groups"] = [{**g, "lr": float(g["lr"])} for g in state["param_groups"]]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load, keeping the learning-rate tensors the compiled step was traced with (no recompile on resume)."""
        tensors = [g["lr"] for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, t in zip(self.optimizer.param_groups, tensors):
            group["lr"] = t.fill_(float(group["lr"]))
