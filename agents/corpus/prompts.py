"""The prompt sets (word lists and templates, by version), the system prompt and the chat
request for one story."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from story_env.agents.corpus import wordlists as w
from story_env.errors import ConfigError

TARGET_LENGTHS: tuple[int, ...] = (80, 100, 120, 150, 180)
"""Story lengths in words that a prompt may ask for."""

SYSTEM_PROMPT = (
    "You are a children's author. You write short, simple, complete stories for young "
    "children, with a beginning, a middle and an ending, using easy words."
)


@dataclass(frozen=True)
class PromptSet:
    """The word lists and templates a build draws its prompts from.

    Attributes:
        version: The prompt-set version a build records (a resume must keep it).
        characters: Kinds of main character.
        adjectives: Words that describe the main character.
        names: First names.
        places: Settings.
        objects: Things that can matter in the plot.
        feelings: How a character feels.
        themes: What a story is about.
        openings: Words a story must begin with.
        templates: Instruction templates filled from the lists.
        plots: What goes wrong (empty: the templates use no ``{plot}``).
        endings: Kinds of ending (empty: the templates use no ``{ending}``).
    """

    version: int
    characters: tuple[str, ...]
    adjectives: tuple[str, ...]
    names: tuple[str, ...]
    places: tuple[str, ...]
    objects: tuple[str, ...]
    feelings: tuple[str, ...]
    themes: tuple[str, ...]
    openings: tuple[str, ...]
    templates: tuple[str, ...]
    plots: tuple[str, ...] = ()
    endings: tuple[str, ...] = ()

    def sizes(self) -> dict[str, int]:
        """How many entries each list (and the templates) has, for the datasheet."""
        names = ("characters", "adjectives", "names", "places", "objects", "feelings")
        names += ("themes", "openings", "plots", "endings", "templates")
        return {name: len(getattr(self, name)) for name in names}


PROMPT_SETS: dict[int, PromptSet] = {
    1: PromptSet(
        version=1,
        characters=w.CHARACTERS,
        adjectives=w.ADJECTIVES,
        names=w.NAMES,
        places=w.PLACES,
        objects=w.OBJECTS,
        feelings=w.FEELINGS,
        themes=w.THEMES,
        openings=w.OPENINGS,
        templates=w.TEMPLATES,
    ),
    2: PromptSet(
        version=2,
        characters=w.CHARACTERS + w.MORE_CHARACTERS,
        adjectives=w.ADJECTIVES + w.MORE_ADJECTIVES,
        names=w.NAMES + w.MORE_NAMES,
        places=w.PLACES + w.MORE_PLACES,
        objects=w.OBJECTS + w.MORE_OBJECTS,
        feelings=w.FEELINGS + w.MORE_FEELINGS,
        themes=w.THEMES + w.MORE_THEMES,
        openings=w.OPENINGS + w.MORE_OPENINGS,
        templates=w.TEMPLATES + w.NEW_TEMPLATES,
        plots=w.PLOTS,
        endings=w.ENDINGS,
    ),
}
"""Every prompt set by version. Set 1 made the v1 corpus (seed 0); set 2 widens it."""

PROMPT_VERSION = max(PROMPT_SETS)
"""The prompt set a new build uses unless told otherwise (the widest)."""

CHARACTERS, ADJECTIVES, NAMES = w.CHARACTERS, w.ADJECTIVES, w.NAMES
PLACES, OBJECTS, FEELINGS, THEMES = w.PLACES, w.OBJECTS, w.FEELINGS, w.THEMES
OPENINGS, TEMPLATES = w.OPENINGS, w.TEMPLATES
PLOTS, ENDINGS = w.PLOTS, w.ENDINGS


def prompt_set(version: int) -> PromptSet:
    """The prompt set of a version.

    Raises:
        ConfigError: For an unknown version (a ``ValueError``).
    """
    if version not in PROMPT_SETS:
        raise ConfigError(
            f"unknown prompt set version {version!r}; choose one of "
            f"{', '.join(map(str, PROMPT_SETS))} (--prompt-version)"
        )
    return PROMPT_SETS[version]


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling and server settings of a build run.

    Attributes:
        temperature: Sampling temperature.
        top_p: Nucleus sampling threshold.
        top_k: Top-k cut (0 disables it).
        min_p: Min-p cut.
        repeat_penalty: llama.cpp repetition penalty (1.0 disables it).
        repeat_last_n: How many recent tokens the repetition penalty looks at.
        max_tokens: Most new tokens per story.
        n_ctx_per_slot: Context length of each llama.cpp slot.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.15
    repeat_last_n: int = 128
    max_tokens: int = 300
    n_ctx_per_slot: int = 1024


REQUEST_SETTINGS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "max_tokens",
)
"""The :class:`GenerationSettings` sent with every request, each a ``build`` flag too
(``n_ctx_per_slot`` sizes the server instead)."""


# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    """Return one item of ``items`` drawn uniformly by ``rng``."""
    return items[int(rng.integers(len(items)))]


def _with_article(noun: str) -> str:
    """Return ``noun`` with "a" or "an" in front."""
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def build_prompt(seed: int, index: int, version: int = PROMPT_VERSION) -> dict[str, Any]:
    """Draw the request for story ``index`` of a run seeded with ``seed``.

    The generator is ``np.random.default_rng([seed, index])``, so each index gets the same
    prompt whatever order the requests are made or finish in. Set 1's draws are those of
    the v1 corpus; a set with plots and endings draws them after the length.

    Args:
        seed: Run seed.
        index: Story index (0, 1, 2, ...).
        version: The prompt set (:data:`PROMPT_SETS`).

    Returns:
        A dict with ``prompt`` (the user message), ``template`` (its index), ``fields``
        (the words drawn) and ``sampling_seed`` (the llama.cpp sampler seed for this
        request).

    Raises:
        ConfigError: If ``index`` is negative or ``version`` unknown.
    """
    if index < 0:
        raise ConfigError(f"story index must be >= 0, got {index}; indices count from 0")
    ps = prompt_set(version)
    rng = np.random.default_rng([seed, index])
    name = _pick(rng, ps.names)
    friend_name = _pick(rng, ps.names)
    while friend_name == name:
        friend_name = _pick(rng, ps.names)
    fields: dict[str, Any] = {
        "adjective": _pick(rng, ps.adjectives),
        "character": _pick(rng, ps.characters),
        "name": name,
        "friend": _pick(rng, ps.characters),
        "friend_name": friend_name,
        "place": _pick(rng, ps.places),
        "object": _pick(rng, ps.objects),
        "feeling": _pick(rng, ps.feelings),
        "theme": _pick(rng, ps.themes),
        "opening": _pick(rng, ps.openings),
        "words": int(TARGET_LENGTHS[int(rng.integers(len(TARGET_LENGTHS)))]),
    }
    if ps.plots:
        fields["plot"] = _pick(rng, ps.plots)
    if ps.endings:
        fields["ending"] = _pick(rng, ps.endings)
    template = int(rng.integers(len(ps.templates)))
    articles = {
        "a_adjective": _with_article(str(fields["adjective"])),
        "a_character": _with_article(str(fields["character"])),
        "A_character": _with_article(str(fields["character"])).capitalize(),
        "a_friend": _with_article(str(fields["friend"])),
    }
    prompt = ps.templates[template].format(**fields, **articles)
    sampling_seed = int(rng.integers(2**31 - 1))
    return {
        "prompt": prompt,
        "template": template,
        "fields": fields,
        "sampling_seed": sampling_seed,
    }


def chat_request(prompt: str, settings: GenerationSettings, sampling_seed: int) -> dict:
    """Build the OpenAI-style chat-completion body for one story.

    Args:
        prompt: The user message.
        settings: Sampling settings.
        sampling_seed: Seed of llama.cpp's sampler for this request.

    Returns:
        The request body (a JSON-able dict) for ``Server.handle_chat_completions``.
    """
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
        **{name: getattr(settings, name) for name in REQUEST_SETTINGS},
        "seed": sampling_seed,
        "stream": False,
    }
