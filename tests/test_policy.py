"""The causal-LM policy's sampler (issue 15): the same distribution as SB3's Categorical."""

from __future__ import annotations

import numpy as np
import torch

from story_env.agents.rl.policy import sample_tokens


def test_inverse_cdf_draws_follow_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0, -30.0]]).repeat(40_000, 1)
    actions, logp = sample_tokens(logits)
    probs = torch.softmax(logits[0], -1).numpy()
    counts = np.bincount(actions.numpy(), minlength=5)
    expected = probs * len(actions)
    # chi-square with 4 degrees of freedom: 18.5 is its 0.999 quantile
    keep = expected > 5
    chi2 = float((((counts - expected) ** 2)[keep] / expected[keep]).sum())
    assert chi2 < 18.5, (counts, expected)
    torch.testing.assert_close(logp, torch.log_softmax(logits, -1)[torch.arange(40_000), actions])


def test_impossible_tokens_are_never_drawn_and_deterministic_is_argmax():
    torch.manual_seed(1)
    logits = torch.full((2_000, 6), float("-inf"))
    logits[:, 4] = 0.0
    logits[::2, 1] = 3.0  # even rows: two possible tokens
    actions, logp = sample_tokens(logits)
    assert set(actions[1::2].tolist()) == {4}
    assert set(actions[::2].tolist()) == {1, 4}
    assert torch.isfinite(logp).all()
    best, best_logp = sample_tokens(logits, deterministic=True)
    assert best[::2].eq(1).all() and best[1::2].eq(4).all()
    assert best_logp[1::2].eq(0).all()


def test_draws_come_from_the_seeded_global_generator():
    logits = torch.randn(16, 4096)
    torch.manual_seed(7)
    first = sample_tokens(logits)[0]
    torch.manual_seed(7)
    assert torch.equal(sample_tokens(logits)[0], first)
