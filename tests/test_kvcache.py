"""The teacher-forced update pass: rows grouped by length (issue 15)."""

from __future__ import annotations

import pytest
import torch

from story_env.agents.rl.kvcache import last_hidden_teacher_forced, length_groups, shared_prefix


def test_length_groups_cover_every_row_once_longest_first():
    lengths = [90, 21, 88, 30, 25, 110, 22, 87]
    groups = length_groups(lengths, cost=16)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert lengths[g[0]] == max(lengths[i] for i in g)
    assert len(groups) > 1  # short rows are not padded to 110
    assert length_groups(lengths, cost=10**9) == [sorted(range(8), key=lambda i: -lengths[i])]
    assert length_groups([]) == []


def _model(arch: str) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if arch == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2)
        ).eval()
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("prompt", [0, 7], ids=["no-shared-prompt", "shared-prompt"])
def test_grouped_pass_matches_one_padded_pass_with_gradients(arch, prompt):
    torch.manual_seed(0)
    model = _model(arch)
    pad = 50
    shared = torch.randint(0, pad, (prompt,))
    rows, lens = [], []
    for total, start in (
        (60, 50),
        (12, 8),
        (58, 40),
        (9, 3),
        (30, 25),
    ):  # rows shorter than the prompt too
        story = torch.cat([shared, torch.randint(0, pad, (total - prompt,))])
        for length in range(start, total + 1):
            row = torch.full((64,), pad)
            row[:length] = story[:length]
            rows.append(row)
            lens.append(length)
    perm = torch.randperm(len(rows))
    ids, lengths = torch.stack(rows)[perm], torch.tensor(lens)[perm]
    assert len(length_groups(sorted(set(lens), reverse=True))) > 1

    def per_row() -> torch.Tensor:
        return torch.stack(
            [
                model.base_model(input_ids=ids[i : i + 1, : lengths[i]]).last_hidden_state[0, -1]
                for i in range(len(ids))
            ]
        )

    grads = []
    for fn in (lambda: last_hidden_teacher_forced(model, ids, lengths), per_row):
        model.zero_grad()
        hidden = fn()
        hidden.pow(2).sum().backward()
        grads.append((hidden.detach(), [p.grad for p in model.parameters() if p.grad is not None]))
    (h_grouped, g_grouped), (h_rows, g_rows) = grads
    torch.testing.assert_close(h_grouped, h_rows, rtol=1e-4, atol=1e-4)
    for a, b in zip(g_grouped, g_rows, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_shared_prefix_leaves_every_row_a_token_of_its_own():
    ids = torch.tensor([[1, 2, 3, 4, 9], [1, 2, 3, 9, 9], [1, 2, 5, 6, 7]])
    assert shared_prefix(ids, torch.tensor([4, 3, 5]), torch.arange(3)) == 2
    # the first two rows share 3 tokens, but the second has only 3: 2 are shared
    assert shared_prefix(ids, torch.tensor([4, 3, 5]), torch.tensor([0, 1])) == 2
    assert shared_prefix(ids, torch.tensor([4, 4, 5]), torch.tensor([0, 1])) == 3
    assert shared_prefix(ids, torch.tensor([4, 4, 5]), torch.tensor([2])) == 4
    assert shared_prefix(torch.tensor([[3, 1], [4, 1]]), torch.tensor([2, 2]), torch.arange(2)) == 0


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_prefill_of_stories_in_flight_matches_a_full_recompute(arch):
    """A rollout after an update starts with stories of every length sharing a prompt:
    the cache built from the shared prompt and length groups gives each row's exact
    hidden state, and so do the single-token steps that follow."""
    from story_env.agents.rl.kvcache import IncrementalLM

    torch.manual_seed(0)
    model = _model(arch)
    pad, width = 50, 64
    prompt = torch.randint(0, pad, (6,))
    lens = [7, 55, 12, 33, 9, 21]
    assert len(length_groups([n - 6 for n in lens])) > 1  # rows run in several groups
    ids = torch.full((len(lens), width), pad)
    for i, n in enumerate(lens):
        ids[i, :n] = torch.cat([prompt, torch.randint(0, pad, (n - 6,))])
    lengths = torch.tensor(lens)
    cache = IncrementalLM(model, pad)

    def full() -> torch.Tensor:
        rows = [
            model.base_model(input_ids=ids[i : i + 1, : lengths[i]]).last_hidden_state[0, -1]
            for i in range(len(ids))
        ]
        return torch.stack(rows)

    with torch.no_grad():
        for _ in range(5):
            torch.testing.assert_close(cache(ids, lengths), full(), rtol=1e-4, atol=1e-4)
            ids[torch.arange(len(ids)), lengths] = torch.randint(0, pad, (len(ids),))
            lengths = lengths + 1
    assert cache.mask.shape[1] <= int(lengths.max())  # the cache is no wider than needed
