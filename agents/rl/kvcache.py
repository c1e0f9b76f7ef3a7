"""Incremental decoding for a batch of growing token sequences (one per env slot).

During rollouts each env slot's sequence grows by one token per step, and a slot that
ends starts again from a new prompt. ``IncrementalLM`` keeps the model's past
key/values for every slot, so a step costs one token's forward pass per slot; a slot
that restarts takes its new prompt's keys and values (computed once per prompt, alone,
and remembered until the weights change) into its own last columns, freed by its
finished story (or, when the cache is narrower than the prompt, as new columns masked
out for the other slots).
When the cache grows ``slack`` columns wider than its longest live row, each row's valid
entries are gathered to the right (no recomputation: keys and values already carry their
positions), so the cache, and the cost of every step, stays near the longest live row.

The cache is a ``transformers.DynamicCache`` used through its public methods: the
model takes and returns it as ``cache`` (transformers 5.24 renamed ``past_key_values``,
which goes in 5.40), new columns join through ``Cache.update`` and a compacted cache is
a new ``DynamicCache`` filled the same way. The one direct write is a restarted slot's
prompt into its own freed columns of the layer tensors ``Cache.update`` last made
(``DynamicLayer`` concatenates into new tensors, so no other cache shares them); the
tests compare every step with a full recompute.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

from story_env.errors import ConfigError

#: Per layer, the (keys, values) tensors of a cache: each (batch, heads, positions, dim).
LayerStates = list[tuple[torch.Tensor, torch.Tensor]]


def layer_states(cache: DynamicCache) -> LayerStates:
    """The (keys, values) tensors of every layer of a ``DynamicCache``, to read only.

    Each is the ``[batch, heads, positions, dim]`` tensor a ``DynamicLayer`` documents
    it stores; changes go through ``Cache.update`` or ``cache_from_states``.
    """
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_from_states(states: LayerStates, config: Any) -> DynamicCache:
    """A new ``DynamicCache`` for ``config``'s model holding ``states``."""
    cache = DynamicCache(config=config)
    for i, (keys, values) in enumerate(states):
        cache.update(keys, values, i)
    return cache


class IncrementalLM:
    """Last-position hidden states of (N, L) padded sequences, reusing a KV cache.

    Args:
        model: A transformers causal LM.
        pad_id: The padding id of observations (right padding).
        max_cache: Rebuild the cache from scratch once it holds this many positions.
        slack: Compact once the cache is longer than its longest row plus this (every
            step copies the whole cache, so a tight one is cheaper than rare compactions).
        max_prompts: Restarted rows' prompts remembered (cleared with the cache).
    """

    def __init__(
        self,
        model: Any,
        pad_id: int,
        max_cache: int = 1024,
        slack: int = 32,
        max_prompts: int = 256,
    ) -> None:
        sliding = [i for i, s in enumerate(DynamicCache(config=model.config).is_sliding) if s]
        if sliding:
            # a sliding-window layer keeps only its last positions, so columns cannot be
            # joined or gathered per row the way this cache does
            raise ConfigError(
                f"{type(model).__name__} uses sliding-window attention (layers {sliding}); "
                "the rollout KV cache supports full-attention students only (e.g. tiny, "
                "smollm2, a GPT-2 or Llama folder)"
            )
        self.model = model
        self.base = model.base_model
        self.pad_id = pad_id
        self.max_cache = max_cache
        self.slack = slack
        self.max_prompts = max_prompts
        self.clear()

    def clear(self) -> None:
        """Forget the cache (the next call recomputes every row)."""
        self.past: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (N, T) 1 = valid cache position
        self.tokens: torch.Tensor | None = None  # (N, L) ids seen so far
        self.lengths: torch.Tensor | None = None  # (N,)
        self.hidden: torch.Tensor | None = None  # (N, H) hidden state at the last token
        # restarted rows' prompts: token ids -> (per layer (keys, values), each
        # (heads, P, dim); the hidden state after the prompt's last token)
        self.prompts: dict[tuple[int, ...], tuple[LayerStates, torch.Tensor]] = {}

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden state after the last real token of each row: (N, H)."""
        if self.past is None or self.tokens is None or ids.shape != self.tokens.shape:
            return self._prefill(ids, lengths)
        assert self.mask is not None and self.lengths is not None and self.hidden is not None
        width = ids.shape[1]
        cols = torch.arange(width)
        prev = self.lengths
        same_prefix = ((ids == self.tokens) | (cols[None, :] >= prev[:, None])).all(dim=1)
        delta = lengths - prev
        unchanged = same_prefix & (delta == 0)
        extend = same_prefix & (delta == 1)
        restart = ~(unchanged | extend)
        if unchanged.all():
            return self.hidden
        self.mask = self.mask.masked_fill(restart[:, None], 0)
        if self.mask.shape[1] > int(self.mask.sum(dim=1).max()) + self.slack:
            self._compact()
        width_r = int(lengths[restart].max()) if restart.any() else 0
        if self.mask.shape[1] + width_r + 1 > self.max_cache:
            return self._prefill(ids, lengths)
        hidden = self.hidden
        if restart.any():
            # a restarted row's new prompt is computed once (alone, then remembered until
            # the weights change); its keys/values go into the row's own last columns,
            # which held its finished story, or, when the cache is narrower than the
            # prompt, join the batch cache as new columns, masked out for every other row
            rows = torch.nonzero(restart)[:, 0].tolist()
            entries = [self._prompt(tuple(ids[r, : lengths[r]].tolist())) for r in rows]
            hidden = hidden.clone()
            for r, (_, last) in zip(rows, entries, strict=True):
                hidden[r] = last
            if width_r <= self.mask.shape[1]:
                self._overwrite(rows, entries, lengths)
            else:
                self._append(rows, entries, lengths, width_r)
        if extend.any():
            # one new token per extended row; other rows feed a masked dummy token
            token = ids.gather(1, prev.clamp(max=width - 1)[:, None]).masked_fill(
                ~extend[:, None], 0
            )
            mask = torch.cat([self.mask, extend.long()[:, None]], dim=1)
            out = self.base(
                input_ids=token,
                attention_mask=mask,
                position_ids=prev[:, None],
                cache=self.past,
                use_cache=True,
            )
            hidden = torch.where(extend[:, None], out.last_hidden_state[:, -1], hidden)
            self.past, self.mask = out.cache, mask
        self.hidden = hidden
        self.tokens, self.lengths = ids.clone(), lengths.clone()
        return self.hidden

    def _overwrite(self, rows: list[int], entries: list[Any], lengths: torch.Tensor) -> None:
        """Write restarted rows' prompt keys/values into each row's own last columns.

        The columns held the row's finished story, masked out already; nothing else
        reads them. The layer tensors are the ones the last ``Cache.update`` made (it
        concatenates into new tensors), so writing into them touches no other cache.
        """
        assert self.past is not None and self.mask is not None
        width = self.mask.shape[1]
        for i, (keys, values) in enumerate(layer_states(self.past)):
            for r, (kv, _) in zip(rows, entries, strict=True):
                keys[r, :, width - kv[i][0].shape[1] :] = kv[i][0]
                values[r, :, width - kv[i][1].shape[1] :] = kv[i][1]
        for r in rows:
            self.mask[r, width - int(lengths[r]) :] = 1

    def _append(
        self, rows: list[int], entries: list[Any], lengths: torch.Tensor, width_r: int
    ) -> None:
        """Restarted rows' prompt keys/values as ``width_r`` new columns of the cache."""
        assert self.past is not None and self.mask is not None
        cols = torch.zeros(len(lengths), width_r, dtype=self.mask.dtype)
        for r in rows:
            cols[r, width_r - int(lengths[r]) :] = 1
        for i, (keys, _) in enumerate(layer_states(self.past)):
            n, heads, _, dim = keys.shape
            grown = keys.new_zeros(2, n, heads, width_r, dim)  # new keys and values
            for r, (kv, _) in zip(rows, entries, strict=True):
                for k in (0, 1):
                    grown[k, r, :, width_r - kv[i][k].shape[1] :] = kv[i][k]
            self.past.update(grown[0], grown[1], i)  # appended as new columns
        self.mask = torch.cat([self.mask, cols], dim=1)

    def _prompt(self, prompt: tuple[int, ...]) -> tuple[LayerStates, torch.Tensor]:
        """Keys/values (per layer, each (heads, P, dim)) and last hidden state of a prompt."""
        entry = self.prompts.get(prompt)
        if entry is None:
            ids = torch.tensor([prompt])
            out = self.base(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            kv = [(keys[0], values[0]) for keys, values in layer_states(out.cache)]
            entry = (kv, out.last_hidden_state[0, -1])
            if len(self.prompts) >= self.max_prompts:
                self.prompts.clear()
            self.prompts[prompt] = entry
        return entry

    def _prefill(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Build the cache from scratch: the shared prompt once, the rest in length groups.

        Each rollout after an update starts here (the weights changed), with stories of
        every length in flight, so rows are not all padded to the longest: the prefix
        every row shares is computed once, the rest of the rows in groups of similar
        length (``length_groups``), and each row's columns are right-aligned in the
        cache, so its last token sits in the final column.
        """
        n = len(ids)
        prefix = min(shared_prefix(ids, lengths, torch.arange(n)), int(lengths.min()) - 1)
        shared = _prefix_states(self.model, ids[0, :prefix]) if prefix else None
        rest = lengths - prefix  # >= 1 token per row
        width = int(rest.max())
        self.hidden = torch.empty(n, self.model.config.hidden_size)
        self.mask = torch.zeros(n, prefix + width, dtype=torch.long)
        self.mask[:, :prefix] = 1
        columns: list[list[torch.Tensor]] = []  # per layer: new keys, new values
        vocab = self.model.config.vocab_size
        for group in length_groups(rest.tolist()):
            rows = torch.as_tensor(group)
            batch = ids[rows, prefix : prefix + int(rest[group[0]])]
            out = _continue(
                self.model, batch.masked_fill(batch >= vocab, 0), shared, use_cache=True
            )
            self.hidden[rows] = out.last_hidden_state[torch.arange(len(rows)), rest[rows] - 1]
            for i, (keys, values) in enumerate(layer_states(out.cache)):
                if len(columns) <= i:
                    shape = (n, keys.shape[1], width, keys.shape[3])
                    columns.append([keys.new_zeros(shape), keys.new_zeros(shape)])
                for j, row in enumerate(group):
                    r = int(rest[row])
                    columns[i][0][row, :, width - r :] = keys[j, :, prefix : prefix + r]
                    columns[i][1][row, :, width - r :] = values[j, :, prefix : prefix + r]
            for row in group:
                self.mask[row, prefix + width - int(rest[row]) :] = 1
        states = [
            (
                torch.cat([k.expand(n, -1, -1, -1), ck], 2),
                torch.cat([v.expand(n, -1, -1, -1), cv], 2),
            )
            if shared is not None
            else (ck, cv)
            for (ck, cv), (k, v) in zip(
                columns, shared or [(None, None)] * len(columns), strict=True
            )
        ]
        self.past = cache_from_states(states, self.model.config)
        self.tokens, self.lengths = ids.clone(), lengths.clone()
        return self.hidden

    def _compact(self) -> None:
        """Drop masked cache columns: each row's valid ones, in order, right-aligned."""
        assert self.mask is not None and self.past is not None
        valid = self.mask.bool()  # (N, T)
        width = max(1, int(valid.sum(dim=1).max()))
        cols = torch.arange(valid.shape[1]).expand_as(valid)
        # invalid columns sort first (-1), valid ones last in their original order
        keep = torch.sort(torch.where(valid, cols, -1), dim=1).values[:, -width:]  # (N, W)
        self.mask = (keep >= 0).long()
        index = keep.clamp(min=0)[:, None, :, None]  # (N, 1, W, 1)
        states = []
        for keys, values in layer_states(self.past):
            shape = (-1, keys.shape[1], -1, keys.shape[3])
            states.append(
                (keys.gather(2, index.expand(shape)), values.gather(2, index.expand(shape)))
            )
        self.past = cache_from_states(states, self.model.config)


def _prefix_of(
    ids: torch.Tensor, lengths: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """For index pairs (a, b): is row a a prefix of row b (lengths included)?"""
    cols = torch.arange(ids.shape[1])[None, :]
    same = (ids[a] == ids[b]) | (cols >= lengths[a][:, None])
    return same.all(dim=1) & (lengths[a] <= lengths[b])


def last_hidden_teacher_forced(
    model: Any, ids: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Hidden state after the last real token of each row, computing each episode once.

    Rows that are prefixes of a longer row in the batch (earlier steps of the same
    story) share that row's single forward pass. Episode-grouped minibatches
    (``story_env.agents.rl.buffers``) list a story's steps in order, which the first, vectorised
    pass catches; a second pass merges what is left. The remaining rows run in groups of
    similar length (``length_groups``), one forward pass each, instead of all padded to
    the longest: the same numbers up to float rounding (a row's matrix products see a
    different batch shape). Returns (N, H), with gradients.
    """
    n = len(ids)
    owner = torch.arange(n)
    if n > 1:  # runs of consecutive rows where each extends the previous one
        idx = torch.arange(n - 1)
        extends = _prefix_of(ids, lengths, idx, idx + 1)
        run_end = torch.ones(n, dtype=torch.bool)
        run_end[:-1] = ~extends
        ends = torch.nonzero(run_end)[:, 0]
        run_id = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), (~extends).long()]), 0)
        owner = ends[run_id]
    reps = torch.unique(owner)
    # merge runs whose representative is a prefix of a longer representative
    merged = {int(r): int(r) for r in reps}
    order = reps[torch.argsort(lengths[reps], descending=True)].tolist()
    kept: list[int] = []
    for r in order:
        if kept:
            cand = torch.as_tensor(kept)
            hit = torch.nonzero(_prefix_of(ids, lengths, torch.full_like(cand, r), cand))
            if len(hit):
                merged[r] = kept[int(hit[0])]
                continue
        kept.append(r)
    owner = torch.as_tensor([merged[int(o)] for o in owner])
    rows_kept = torch.as_tensor(kept)
    # every row (kept or served by a longer one) keeps its last token out of the prefix
    prefix = min(shared_prefix(ids, lengths, rows_kept), int(lengths.min()) - 1)
    states = _prefix_states(model, ids[kept[0], :prefix]) if prefix else None
    # one forward pass per group of similar lengths: padding every row to the longest
    # one cost up to half of the update (short new stories padded to long cut-off ones)
    lens = (lengths[rows_kept] - prefix).tolist()
    parts, where = [], torch.empty(n, dtype=torch.long)
    offset = 0
    vocab = model.config.vocab_size
    for group in length_groups(lens):
        rows = rows_kept[group]
        batch = ids[rows, prefix : prefix + lens[group[0]]]
        batch = batch.masked_fill(batch >= vocab, 0)
        # use_cache=False: no cache is built for the update's own keys and values
        hidden = _continue(model, batch, states, use_cache=False).last_hidden_state  # (R, W, H)
        served = torch.nonzero(torch.isin(owner, rows))[:, 0]
        slot = torch.empty(n, dtype=torch.long)
        slot[rows] = torch.arange(len(rows))
        parts.append(hidden[slot[owner[served]], lengths[served] - 1 - prefix])
        where[served] = torch.arange(offset, offset + len(served))
        offset += len(served)
    if len(parts) == 1:  # every row served in order
        return parts[0]
    return torch.cat(parts)[where]


def shared_prefix(ids: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor) -> int:
    """Length of the token prefix all ``rows`` share, leaving each row one token of its own.

    Every story of a run usually starts with the same prompt; its positions are then
    computed once per pass instead of once per row.
    """
    sub = ids[rows]
    same = (sub == sub[0]).all(dim=0).long()
    return min(int(same.cumprod(0).sum()), int(lengths[rows].min()) - 1)


def _prefix_states(model: Any, prefix: torch.Tensor) -> LayerStates:
    """Per layer (keys, values) of one row of tokens, each (1, heads, P, dim)."""
    out = model.base_model(input_ids=prefix[None, :], use_cache=True)
    return layer_states(out.cache)


def _continue(model: Any, batch: torch.Tensor, states: LayerStates | None, **kwargs: Any) -> Any:
    """The base model's output on ``batch`` (R, W), each row continuing the shared prefix.

    The prefix's keys and values (one row, with their gradients) are broadcast to every
    row, so a backward pass sums each row's gradient into the one prefix computation.
    Right padding: causal attention keeps real tokens from seeing the pads, so an all-ones
    mask is exact (and keeps transformers on its fast causal path).
    """
    if states is None:
        return model.base_model(input_ids=batch, attention_mask=torch.ones_like(batch), **kwargs)
    r, width = batch.shape
    prefix = states[0][0].shape[2]
    grown = [(k.expand(r, -1, -1, -1), v.expand(r, -1, -1, -1)) for k, v in states]
    return model.base_model(
        input_ids=batch,
        attention_mask=torch.ones(r, prefix + width, dtype=torch.long),
        position_ids=torch.arange(prefix, prefix + width)[None, :].expand(r, -1),
        cache=cache_from_states(grown, model.config),
        **kwargs,
    )


def continue_rows(
    model: Any, rows: list[tuple[LayerStates | None, torch.Tensor]]
) -> list[tuple[torch.Tensor, LayerStates]]:
    """Run each row's new tokens after its own cached past, in length groups.

    For a frozen model (the KL reference), whose keys and values stay valid for good.
    Each row is ``(past, new_ids)``: ``past`` per layer (keys, values), each
    ``(1, heads, P, dim)`` (or None: no past), and ``new_ids`` the 1-D tokens after it.
    Pasts of different lengths sit right-aligned in one cache, masked where empty.

    Returns:
        Per row: the hidden states of its new tokens ``(n_new, H)`` and its whole
        keys and values (past and new), each ``(1, heads, P + n_new, dim)``.
    """
    out: list[Any] = [None] * len(rows)
    vocab = model.config.vocab_size
    news = [len(new) for _, new in rows]
    for group in length_groups(news):
        pasts = [0 if rows[i][0] is None else rows[i][0][0][0].shape[2] for i in group]
        width, n = max(pasts), news[group[0]]
        ids = torch.zeros(len(group), n, dtype=torch.long)
        mask = torch.zeros(len(group), width + n, dtype=torch.long)
        for j, i in enumerate(group):
            ids[j, : news[i]] = rows[i][1].masked_fill(rows[i][1] >= vocab, 0)
            mask[j, width - pasts[j] :] = 1
        cache = None
        if width:
            first = next(rows[i][0] for i in group if rows[i][0] is not None)
            layers = []
            for layer, (keys, _) in enumerate(first):
                kv = keys.new_zeros(2, len(group), keys.shape[1], width, keys.shape[3])
                for j, i in enumerate(group):
                    past = rows[i][0]
                    if past is not None:
                        kv[0, j, :, width - pasts[j] :] = past[layer][0][0]
                        kv[1, j, :, width - pasts[j] :] = past[layer][1][0]
                layers.append((kv[0], kv[1]))
            cache = cache_from_states(layers, model.config)
        result = model.base_model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=torch.as_tensor(pasts)[:, None] + torch.arange(n)[None, :],
            cache=cache,
            use_cache=True,
        )
        states = layer_states(result.cache)
        for j, i in enumerate(group):
            keep = slice(width - pasts[j], width + news[i])
            out[i] = (
                result.last_hidden_state[j, : news[i]],
                [(keys[j : j + 1, :, keep], values[j : j + 1, :, keep]) for keys, values in states],
            )
    return out


#: A forward pass's fixed cost, in padded positions, when grouping rows by length.
GROUP_COST = 64


def length_groups(lengths: list[int], cost: int = GROUP_COST) -> list[list[int]]:
    """Indices of ``lengths`` in groups, each padded to its longest, minimising padding.

    Rows sorted longest first are cut into consecutive groups so that the padded
    positions plus ``cost`` per group (a forward pass's overhead) are smallest (exact
    dynamic programme, O(R^2)). Each group lists its longest row first.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    sl = [lengths[i] for i in order]
    r = len(sl)
    best = [0.0] + [float("inf")] * r  # best[j]: cost of the first j rows
    cut = [0] * (r + 1)
    for j in range(1, r + 1):
        for i in range(j):  # rows i..j-1 form the last group, padded to sl[i]
            c = best[i] + cost + sl[i] * (j - i)
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], r
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]
