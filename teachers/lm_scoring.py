"""What a causal language model says about a story: per-token log-probabilities.

``StoryScorer`` runs a local transformers causal LM forward only and returns, for each
story, the log-probability of every story token after the prompt and the story's
earlier tokens, split by sentence. The prompt's key/value cache is computed once per
distinct prompt and shared by every row, so a story costs its own tokens, never its
prompt again; rows of similar length are batched together. The LM head is applied
only at the positions that are scored, in chunks, so a large vocabulary (Gemma's 262k)
never materialises a ``(batch, seq, vocab)`` tensor.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*(?=\s)")


def split_sentences(story: str) -> list[str]:
    """Split a story into sentences that concatenate back to the story exactly.

    Each piece keeps the whitespace before it (``" He ran."``), so tokenizing the pieces
    one by one gives the tokens a reader sees, and a piece can be scored on its own.
    """
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(story):
        end = match.end()
        if story[start:end].strip():
            pieces.append(story[start:end])
            start = end
    if story[start:].strip():
        pieces.append(story[start:])
    elif pieces:
        pieces[-1] += story[start:]
    return pieces


def repeat_prefix(prefix_cache: Any, prefix_len: int, mask: Any) -> tuple[Any, Any]:
    """Share one prompt's key/value cache across a batch of rows that continue it.

    Args:
        prefix_cache: The key/value cache of the prompt, one row (left unchanged).
        prefix_len: The prompt's length in tokens.
        mask: The rows' attention mask (batch, n).

    Returns:
        ``(cache, full_mask)``: a copy of the cache repeated for every row, and the
        attention mask over prompt and rows (batch, prefix_len + n).
    """
    import torch

    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(mask.shape[0])
    ones = torch.ones(mask.shape[0], prefix_len, dtype=mask.dtype)
    return cache, torch.cat([ones, mask], dim=1)


def forward_cached(
    module: Any, ids: Any, mask: Any, positions: Any, cache: Any, **kwargs: Any
) -> Any:
    """One forward pass of ``ids`` (batch, n) after what ``cache`` holds (which it extends).

    ``mask`` covers the cached tokens and ``ids``; ``positions`` (batch, n) continue the
    cached ones; ``kwargs`` go to the module as they are (e.g. ``logits_to_keep``).
    """
    return module(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
        **kwargs,
    )


@dataclass(frozen=True)
class StoryLogProbs:
    """Log-probabilities (natural log) of one story's tokens after its prompt.

    Attributes:
        in_context: One array per sentence: each token's log p after the prompt and
            everything before it in the story.
    """

    in_context: list[np.ndarray]

    @property
    def tokens(self) -> int:
        """Story tokens scored."""
        return int(sum(len(s) for s in self.in_context))


class StoryScorer:
    """Forward-only log-probabilities of stories under a causal LM.

    Args:
        model: A transformers causal LM in eval mode.
        tokenizer: Its tokenizer.
        batch_size: Rows per forward pass.
        max_story_tokens: Tokens of a story that are scored; the rest is ignored
            (stories here are ~90 tokens; this bounds the cost of a runaway one).
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, batch_size: int = 16, max_story_tokens: int = 256
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_story_tokens = batch_size, max_story_tokens
        self._decoder = model.get_decoder()
        self._head = model.get_output_embeddings()
        self._softcap = getattr(model.config, "final_logit_softcapping", None)
        self._prompts: dict[str, tuple[Any, int, Any]] = {}

    def tokenize(self, prompt: str, story: str) -> list[list[int]]:
        """The story's token ids, sentence by sentence, at most ``max_story_tokens``."""
        if prompt and story and not prompt[-1].isspace() and not story[0].isspace():
            story = " " + story  # the env joins prompt and story the same way
        out, left = [], self.max_story_tokens
        for piece in split_sentences(story):
            ids = self.tokenizer.encode(piece, add_special_tokens=False)[:left]
            if ids:
                out.append(list(ids))
                left -= len(ids)
            if left <= 0:
                break
        return out

    def score(self, prompts: Sequence[str], stories: Sequence[str]) -> list[StoryLogProbs]:
        """Log-probabilities of each story's tokens after its prompt, sentence by sentence."""
        sentences = [self.tokenize(p, s) for p, s in zip(prompts, stories, strict=True)]
        rows = [[t for s in sents for t in s] for sents in sentences]
        values: dict[int, np.ndarray] = {}
        by_prompt: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row:
                by_prompt.setdefault(prompts[i], []).append(i)
        for prompt, members in by_prompt.items():
            members.sort(key=lambda i: len(rows[i]))  # length buckets: little padding
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                for i, lp in zip(chunk, self._rows(prompt, [rows[i] for i in chunk]), strict=True):
                    values[i] = lp
        out = []
        for i, sents in enumerate(sentences):
            if not sents:
                out.append(StoryLogProbs([]))
                continue
            cuts = np.cumsum([len(s) for s in sents])[:-1]
            out.append(StoryLogProbs(list(np.split(values[i], cuts))))
        return out

    # --- internals ----------------------------------------------------------------------
    def _prompt_state(self, prompt: str) -> tuple[Any, int, Any]:
        """The prompt's key/value cache, length, and log-probs of the first story token."""
        import torch

        if prompt not in self._prompts:
            ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]  # (1, P)
            if ids.shape[1] == 0:  # an empty prompt: condition on the tokenizer's own start
                start = self.tokenizer.bos_token_id or self.tokenizer.eos_token_id
                ids = torch.tensor([[start]])
            with torch.inference_mode():
                out = self._decoder(
                    input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True
                )
                first = self._log_softmax(out.last_hidden_state[0, -1:])  # (1, vocab)
            if len(self._prompts) >= 32:
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[prompt] = (out.cache, ids.shape[1], first[0])
        return self._prompts[prompt]

    def _rows(self, prompt: str, rows: list[list[int]]) -> list[np.ndarray]:
        """Log p of every token of each row, each row read after the prompt."""
        import torch

        cache, plen, first = self._prompt_state(prompt)
        batch, width = len(rows), max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((batch, width), pad, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, : len(r)] = torch.tensor(r)
            mask[b, : len(r)] = 1
        past, full_mask = repeat_prefix(cache, plen, mask)
        positions = (plen + torch.arange(width))[None, :].expand(batch, width)
        with torch.inference_mode():
            hidden = forward_cached(
                self._decoder, ids, full_mask, positions, past
            ).last_hidden_state  # (batch, width, hidden)
            # position t predicts token t + 1; the prompt's last position predicts token 0
            keep = mask[:, 1:].bool()  # (batch, width - 1)
            targets = ids[:, 1:][keep]  # (n,)
            logp = self._target_logprobs(hidden[:, :-1][keep], targets)  # (n,)
            firsts = first[ids[:, 0]]  # (batch,)
        out, at = [], 0
        for b, r in enumerate(rows):
            n = len(r) - 1
            out.append(np.concatenate([[float(firsts[b])], logp[at : at + n].float().numpy()]))
            at += n
        return out

    def _log_softmax(self, hidden: Any) -> Any:
        import torch

        logits = self._head(hidden).float()  # (n, vocab)
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return torch.log_softmax(logits, dim=-1)

    def _target_logprobs(self, hidden: Any, targets: Any, chunk: int = 256) -> Any:
        """log p(target) for each hidden state, the LM head applied ``chunk`` rows at a time."""
        import torch

        parts = []
        for s in range(0, hidden.shape[0], chunk):
            logp = self._log_softmax(hidden[s : s + chunk])  # (chunk, vocab)
            parts.append(logp.gather(1, targets[s : s + chunk, None])[:, 0])
        return torch.cat(parts) if parts else torch.zeros(0)
