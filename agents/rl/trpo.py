"""TRPO whose actor gradients take one backward pass instead of one per parameter tensor.

sb3-contrib's TRPO asks autograd for the KL gradient (with its graph, for the
Hessian-vector products) and the surrogate gradient one parameter tensor at a time. For
an MLP that is a handful of passes; a transformer student has dozens of tensors, so an
update on the tiny student ran ~100 backward passes through the whole story batch and
took 85 s for 256 tokens. Asking for all tensors at once gives the same gradients.
"""

from __future__ import annotations

import torch
from sb3_contrib import TRPO


class LMTRPO(TRPO):
    """``sb3_contrib.TRPO`` with batched actor gradients (same maths, same arguments)."""

    def _compute_actor_grad(
        self, kl_div: torch.Tensor, policy_objective: torch.Tensor
    ) -> tuple[list[torch.nn.Parameter], torch.Tensor, torch.Tensor, list[tuple[int, ...]]]:
        # the value head is not part of the actor (sb3-contrib's rule: skip names with "value")
        candidates = [p for name, p in self.policy.named_parameters() if "value" not in name]
        kl_grads = torch.autograd.grad(
            kl_div, candidates, create_graph=True, retain_graph=True, allow_unused=True
        )
        # parameters the policy's distribution does not depend on get no step
        kept = [(p, g) for p, g in zip(candidates, kl_grads, strict=True) if g is not None]
        params = [p for p, _ in kept]
        objective_grads = torch.autograd.grad(policy_objective, params, retain_graph=True)
        shapes = [g.shape for _, g in kept]
        grad_kl = torch.cat([g.reshape(-1) for _, g in kept])
        objective = torch.cat([g.reshape(-1) for g in objective_grads])
        return params, objective, grad_kl, shapes
