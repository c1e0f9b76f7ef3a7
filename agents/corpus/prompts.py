"""Word lists, the system prompt and templates, and the chat request for one story."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from story_env.errors import ConfigError

# --------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------

# fmt: off

CHARACTERS: tuple[str, ...] = (
    "rabbit", "fox", "bear cub", "kitten", "puppy", "duckling", "owl", "mouse", "squirrel",
    "hedgehog", "turtle", "frog", "penguin", "lamb", "pony", "piglet", "elephant",
    "giraffe", "lion cub", "monkey", "tiger cub", "hippo", "zebra", "koala", "panda",
    "otter", "beaver", "badger", "deer", "goat", "hen", "chick", "goose", "robin",
    "sparrow", "parrot", "bee", "ladybug", "butterfly", "snail", "ant", "caterpillar",
    "fish", "whale", "dolphin", "crab", "seal", "octopus", "dragon", "unicorn", "robot",
    "teddy bear", "toy soldier", "rag doll", "snowman", "little cloud", "star", "boat",
    "train", "tractor", "girl", "boy", "princess", "prince", "farmer", "baker",
    "grandma", "grandpa", "little witch", "wizard", "giant", "fairy", "pirate", "king",
    "queen", "dog", "cat", "cow", "horse", "wolf cub", "bat", "mole", "raccoon",
)
"""Kinds of main character (animals, toys, people, magical folk, things)."""

ADJECTIVES: tuple[str, ...] = (
    "little", "shy", "brave", "curious", "kind", "sleepy", "happy", "clever", "silly",
    "tiny", "gentle", "grumpy", "busy", "lonely", "cheerful", "careful", "playful",
    "quiet", "friendly", "young", "old", "small", "hungry", "messy", "proud", "helpful",
    "fluffy", "noisy", "polite", "bold",
)
"""Words that describe the main character."""

NAMES: tuple[str, ...] = (
    "Pip", "Mia", "Leo", "Lily", "Max", "Ben", "Sam", "Tom", "Anna", "Lucy", "Sara",
    "Finn", "Rosie", "Tim", "Ella", "Jack", "Zoe", "Noah", "Ava", "Milo", "Ruby", "Ollie",
    "Daisy", "Theo", "Nina", "Hugo", "Ivy", "Oscar", "Luna", "Jake", "Maya", "Kai",
    "Poppy", "Sunny", "Bella", "Toby", "Molly", "Freddy", "Rosa", "Eli", "Hana", "Omar",
    "Priya", "Amir", "Lena", "Ravi", "Sofia", "Yuki", "Chen", "Tara", "Bruno", "Coco",
    "Dot", "Fizz", "Gus", "Hazel", "Juno", "Kiki", "Lola", "Nemo", "Pebble", "Rolo",
    "Sky", "Tilly", "Wren", "Ziggy", "Button", "Biscuit", "Clover", "Maple", "Pickles",
    "Bramble", "Nutmeg", "Honey", "Blue", "Patch", "Whiskers", "Bubbles",
)
"""First names for characters."""

PLACES: tuple[str, ...] = (
    "a big green forest", "a sunny meadow", "a small farm", "a busy town", "a quiet village",
    "a sandy beach", "a deep blue sea", "a tall mountain", "a snowy hill", "a little pond",
    "a garden full of flowers", "a cozy house", "a school", "a park", "a zoo", "a castle",
    "a jungle", "a desert", "a river", "an island", "a cave", "a library", "a bakery",
    "a toy shop", "a city street", "a tree house", "a boat on a lake", "a train station",
    "a playground", "a field of pumpkins", "an old barn", "a windy cliff", "a swamp",
    "a rainy street", "a market", "a campsite", "a spaceship", "the moon", "a cloud castle",
    "a candy land", "a fairy wood", "a pirate ship", "a hospital", "a kitchen",
    "a backyard", "a hilltop", "a dark wood at night", "a frozen lake", "an orchard",
    "a bus", "a museum", "a lighthouse", "a circus", "a bedroom at bedtime",
)
"""Settings for the story."""

OBJECTS: tuple[str, ...] = (
    "a red ball", "a shiny key", "a lost hat", "a blue kite", "a magic stone",
    "a little boat", "a map", "a basket of apples", "a golden feather", "an old box",
    "a seed", "a letter", "a bell", "a lantern", "an umbrella", "a drum", "a yellow scarf",
    "a cake", "a balloon", "a book", "a music box", "a shell", "a pair of boots",
    "a paintbrush", "a flower", "a teapot", "a wooden spoon", "a toy car", "a crown",
    "a blanket", "a snow globe", "a jar of honey", "a whistle", "a compass", "a carrot",
    "a nest", "a pebble", "a sock", "a star that fell from the sky", "a kite string",
    "a bucket", "a bicycle", "a cookie", "a picture", "a bag of seeds", "a clock",
    "a ribbon", "a mirror", "a puzzle", "a rope", "a nut", "a pumpkin", "a bone",
    "a flute", "a candle", "a ladder", "a sandcastle", "a wagon",
)
"""Things that can matter in the plot."""

FEELINGS: tuple[str, ...] = (
    "happy", "sad", "scared", "excited", "worried", "proud", "lonely", "curious",
    "surprised", "angry", "shy", "brave", "grateful", "jealous", "calm", "sleepy",
    "hopeful", "nervous", "cheerful", "bored", "confused", "kind", "silly", "sorry",
)
"""How the character feels at some point in the story."""

THEMES: tuple[str, ...] = (
    "sharing with a friend", "making a new friend", "being brave", "helping someone",
    "telling the truth", "saying sorry", "trying again after a mistake",
    "being patient", "working together", "being kind to others", "finding something lost",
    "learning something new", "getting ready for bed", "a surprise for someone",
    "being different is fine", "listening to others", "taking care of nature",
    "keeping a promise", "a small adventure", "being thankful", "facing a fear",
    "a rainy day", "a birthday", "the first snow", "a trip with family",
    "a problem solved with a clever idea", "waiting for something special",
)
"""What the story is about."""

OPENINGS: tuple[str, ...] = (
    "Once upon a time",
    "Once upon a time, in a faraway land,",
    "Once upon a time, there was",
    "One day",
    "One sunny morning",
    "One rainy afternoon",
    "Long ago",
    "Every morning",
    "Late one night",
    "In a little village",
    "It was the first day of spring",
    "On a cold winter day",
    "Not so long ago",
    "There once was",
    "Early one morning",
    "One summer day",
    "At the edge of the forest",
    "Every evening",
)
"""Words the story must begin with (the paper's fixed prompt is one of them)."""
# fmt: on

TARGET_LENGTHS: tuple[int, ...] = (80, 100, 120, 150, 180)
"""Story lengths in words that a prompt may ask for."""

SYSTEM_PROMPT = (
    "You are a children's author. You write short, simple, complete stories for young "
    "children, with a beginning, a middle and an ending, using easy words."
)

TEMPLATES: tuple[str, ...] = (
    "Write a short story for young children, about {words} words long, about {a_adjective} "
    "{character} named {name} who finds {object} in {place}. At one point {name} feels "
    '{feeling}. Begin the story with "{opening}". Write plain prose with no title.',
    "Tell a bedtime story of about {words} words for a small child. Main character: "
    "{a_adjective} {character} called {name}. Setting: {place}. It is about {theme}. Start "
    'with "{opening}". No title, no headings, just the story.',
    "Write a simple children's story of about {words} words. {name} the {character} and "
    "{friend_name} the {friend} go to {place}, where something makes them feel {feeling}. "
    'Use short sentences and easy words. Begin with "{opening}". Do not write a title.',
    "Write a story for a four-year-old, about {words} words, about {theme}. The hero is "
    "{a_adjective} {character} named {name}, and {object} is important in the story. Start "
    'the story with "{opening}". Only write the story, with a happy ending.',
    "Write a short, gentle story (about {words} words) set in {place}. {A_character} named "
    "{name} feels {feeling} because of {object}, and {a_friend} named {friend_name} helps. "
    'Begin with "{opening}". Plain prose, no title.',
)
"""Instruction templates; the fields are filled from the word lists."""


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


def build_prompt(seed: int, index: int) -> dict[str, Any]:
    """Draw the request for story ``index`` of a run seeded with ``seed``.

    The generator is ``np.random.default_rng([seed, index])``, so each index gets the same
    prompt whatever order the requests are made or finish in.

    Args:
        seed: Run seed.
        index: Story index (0, 1, 2, ...).

    Returns:
        A dict with ``prompt`` (the user message), ``template`` (its index), ``fields``
        (the words drawn) and ``sampling_seed`` (the llama.cpp sampler seed for this
        request).

    Raises:
        ConfigError: If ``index`` is negative.
    """
    if index < 0:
        raise ConfigError(f"story index must be >= 0, got {index}; indices count from 0")
    rng = np.random.default_rng([seed, index])
    name = _pick(rng, NAMES)
    friend_name = _pick(rng, NAMES)
    while friend_name == name:
        friend_name = _pick(rng, NAMES)
    fields = {
        "adjective": _pick(rng, ADJECTIVES),
        "character": _pick(rng, CHARACTERS),
        "name": name,
        "friend": _pick(rng, CHARACTERS),
        "friend_name": friend_name,
        "place": _pick(rng, PLACES),
        "object": _pick(rng, OBJECTS),
        "feeling": _pick(rng, FEELINGS),
        "theme": _pick(rng, THEMES),
        "opening": _pick(rng, OPENINGS),
        "words": int(TARGET_LENGTHS[int(rng.integers(len(TARGET_LENGTHS)))]),
    }
    template = int(rng.integers(len(TEMPLATES)))
    articles = {
        "a_adjective": _with_article(str(fields["adjective"])),
        "A_character": _with_article(str(fields["character"])).capitalize(),
        "a_friend": _with_article(str(fields["friend"])),
    }
    prompt = TEMPLATES[template].format(**fields, **articles)
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
