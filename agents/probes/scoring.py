"""Score probe items with a causal LM: the good text must get the higher log-probability.

A minimal pair is right when the sum of the model's token log-probabilities of the good
sentence exceeds that of the bad one (BLiMP's rule, totals not means). An entity-tracking
item compares the log-probabilities of two continuations of the same context. Every text
follows the end-of-text token and a space, as each story does in the pretraining stream
(`` story<eos> story<eos> ...``), so the first word is scored too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from story_env.agents.probes.entity import PHENOMENON as ENTITY_TRACKING
from story_env.agents.probes.entity import generate_entity_items
from story_env.agents.probes.templates import PHENOMENA, MinimalPair, generate_pairs
from story_env.errors import ConfigError
from story_env.student import StoryTokenizer

#: Every probe: the formal phenomena, then entity tracking.
PROBES: tuple[str, ...] = (*PHENOMENA, ENTITY_TRACKING)
#: z of a two-sided 95% normal interval.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Written as ``low = k^2 / (n (A + B))`` with ``A = k + z^2/2`` and
    ``B = z sqrt(k (n - k) / n + z^2 / 4)`` (the textbook ``(A - B) / (n + z^2)`` times
    ``(A + B) / (A + B)``), and ``high`` as the same for the failures, so both ends are
    exact at 0 and n and lie in [0, 1] with no cancellation and no clipping.

    Raises:
        ConfigError: ``n`` < 1 or ``successes`` outside [0, n].
    """
    if n < 1 or not 0 <= successes <= n:
        raise ConfigError(
            f"a Wilson interval needs 0 <= successes <= n and n >= 1; got {successes}/{n}"
        )
    k, f = successes, n - successes
    root = z * math.sqrt(k * f / n + z * z / 4)
    low = k * k / (n * (k + z * z / 2 + root))
    high = 1.0 - f * f / (n * (f + z * z / 2 + root))
    return low, high


def probe_items(
    pairs: int = 100, seed: int = 0, probes: Sequence[str] | None = None
) -> list[MinimalPair]:
    """``pairs`` items of each probe (default: all of ``PROBES``), deterministic in ``seed``."""
    names = list(PROBES if probes is None else probes)
    unknown = [name for name in names if name not in PROBES]
    if unknown:
        raise ConfigError(f"unknown probes {unknown}; known: {', '.join(PROBES)}")
    items: list[MinimalPair] = []
    for name in names:
        if name == ENTITY_TRACKING:
            items += generate_entity_items(pairs, seed)
        else:
            items += generate_pairs(name, pairs, seed)
    return items


def _max_positions(model: Any) -> int | None:
    config = model.config
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def continuation_logprobs(
    model: Any,
    tokenizer: StoryTokenizer,
    texts: Sequence[tuple[str, str]],
    *,
    max_logits: int = 2**25,
) -> np.ndarray:
    """Summed log-probability of each continuation given its context.

    Args:
        model: A transformers causal LM (its ``logits`` are read).
        tokenizer: The student's tokenizer (``encode`` and ``eos_token_id``).
        texts: (context, continuation) pairs; an empty context scores the continuation
            as a text of its own. Each part is read after a space.
        max_logits: Batches are cut so that batch x length x vocabulary stays under this
            (bounds memory for large vocabularies).

    Returns:
        One float64 log-probability (nats) per pair.
    """
    import torch

    eos = int(tokenizer.eos_token_id)
    sequences: list[tuple[list[int], int]] = []
    for context, continuation in texts:
        prefix = [eos, *tokenizer.encode(" " + context)] if context else [eos]
        scored = tokenizer.encode(" " + continuation)
        if not scored:
            raise ConfigError(f"continuation {continuation!r} encodes to no tokens")
        sequences.append((prefix + scored, len(prefix)))
    longest = max(len(ids) for ids, _ in sequences)
    limit = _max_positions(model)
    if limit is not None and longest > limit:
        raise ConfigError(
            f"a probe text has {longest} tokens but the model reads at most {limit}; "
            "use a model with a longer context"
        )
    vocab = int(model.get_output_embeddings().out_features)
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]))
    out = np.empty(len(sequences), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            rows = max(1, max_logits // (vocab * longest))
            for start in range(0, len(order), rows):
                batch = order[start : start + rows]
                width = max(len(sequences[i][0]) for i in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                scored = torch.zeros((len(batch), width - 1), dtype=torch.bool)
                for row, i in enumerate(batch):
                    seq, first = sequences[i]
                    ids[row, : len(seq)] = torch.as_tensor(seq)
                    mask[row, : len(seq)] = 1
                    scored[row, first - 1 : len(seq) - 1] = True  # predictions of seq[first:]
                ids, mask, scored = ids.to(device), mask.to(device), scored.to(device)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                # (batch, width - 1, vocab): position t predicts token t + 1
                picked = logits.gather(-1, ids[:, 1:, None])[..., 0]
                logp = picked - torch.logsumexp(logits, dim=-1)  # (batch, width - 1)
                sums = torch.where(scored, logp, 0.0).sum(dim=1)
                out[batch] = sums.double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class ProbeScore:
    """Accuracy of one probe (or of all pairs together).

    Attributes:
        name: The probe, or ``"mean"`` / ``"formal mean"`` for pooled rows.
        pairs: Items scored.
        correct: Items where the good text got the higher log-probability.
        accuracy: ``correct / pairs``.
        ci_low: Lower end of the 95% Wilson interval.
        ci_high: Upper end of the 95% Wilson interval.
        margin: Mean log-probability difference good - bad (nats).
    """

    name: str
    pairs: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    margin: float


def _score(name: str, wins: np.ndarray, margins: np.ndarray) -> ProbeScore:
    correct, n = int(wins.sum()), len(wins)
    low, high = wilson_interval(correct, n)
    return ProbeScore(name, n, correct, correct / n, low, high, float(np.mean(margins)))


@dataclass(frozen=True)
class ProbeReport:
    """Per-probe accuracies and the pooled means.

    Attributes:
        probes: One row per probe, in ``PROBES`` order.
        formal: The formal phenomena pooled (every probe but entity tracking).
        mean: All probes pooled; each probe has the same number of items, so this is
            also the mean of the per-probe accuracies.
        seed: The seed the items were generated with.
    """

    probes: tuple[ProbeScore, ...]
    formal: ProbeScore | None
    mean: ProbeScore
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "seed": self.seed,
            "probes": {row.name: asdict(row) for row in self.probes},
            "formal": None if self.formal is None else asdict(self.formal),
            "mean": asdict(self.mean),
        }

    def table(self) -> str:
        """A fixed-width text table: accuracy and 95% CI per probe, then the means."""
        width = max(len(row.name) for row in (*self.probes, self.mean))
        lines = [f"{'probe':<{width}}  pairs  accuracy  95% CI          margin"]
        rows = [*self.probes]
        rows += [r for r in (self.formal, self.mean) if r is not None]
        for i, row in enumerate(rows):
            if i == len(self.probes):
                lines.append("-" * len(lines[0]))
            lines.append(
                f"{row.name:<{width}}  {row.pairs:>5}  {row.accuracy:8.3f}  "
                f"[{row.ci_low:.3f}, {row.ci_high:.3f}]  {row.margin:+7.2f}"
            )
        return "\n".join(lines)


def run_probes(
    model: Any,
    tokenizer: StoryTokenizer,
    *,
    pairs: int = 100,
    seed: int = 0,
    probes: Sequence[str] | None = None,
) -> ProbeReport:
    """Generate the probe items and score them with ``model``.

    Args:
        model: A transformers causal LM.
        tokenizer: Its tokenizer, as the student gives it.
        pairs: Items per probe.
        seed: Seeds the templates.
        probes: Which probes (default all of ``PROBES``).
    """
    items = probe_items(pairs, seed, probes)
    texts = [(item.context, text) for item in items for text in (item.good, item.bad)]
    logp = continuation_logprobs(model, tokenizer, texts).reshape(-1, 2)  # (items, good/bad)
    margins = logp[:, 0] - logp[:, 1]
    names = np.array([item.phenomenon for item in items])
    rows = tuple(
        _score(name, margins[names == name] > 0, margins[names == name])
        for name in dict.fromkeys(names.tolist())
    )
    formal_mask = names != ENTITY_TRACKING
    formal = (
        _score("formal mean", margins[formal_mask] > 0, margins[formal_mask])
        if formal_mask.any() and not formal_mask.all()
        else None
    )
    return ProbeReport(rows, formal, _score("mean", margins > 0, margins), seed)
