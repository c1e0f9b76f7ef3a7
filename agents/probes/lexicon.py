"""The probes' vocabulary: words of children's stories with their grammatical features.

Every word here is common in the packaged story corpus (``agents/data``), so a student
pretrained on it has seen them; the templates in ``story_env.agents.probes.templates`` draw only
from these lists, which makes the probe grammar closed and checkable.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Boys' and girls' names (for reflexive gender agreement and entity tracking).
BOYS: tuple[str, ...] = ("Tom", "Sam", "Max", "Ben", "Jack", "Tim", "Leo")
GIRLS: tuple[str, ...] = ("Mia", "Lily", "Emma", "Anna", "Lucy", "Sara", "Zoe")
NAMES: tuple[str, ...] = BOYS + GIRLS


@dataclass(frozen=True)
class Noun:
    """A count noun.

    Attributes:
        singular: Singular form.
        plural: Plural form.
        gender: ``"m"``, ``"f"`` or ``""`` (no natural gender) for the singular.
    """

    singular: str
    plural: str
    gender: str = ""

    def form(self, plural: bool) -> str:
        """The singular or plural form."""
        return self.plural if plural else self.singular


ANIMALS: tuple[Noun, ...] = (
    Noun("dog", "dogs"),
    Noun("cat", "cats"),
    Noun("bird", "birds"),
    Noun("bear", "bears"),
    Noun("rabbit", "rabbits"),
    Noun("fox", "foxes"),
    Noun("frog", "frogs"),
    Noun("mouse", "mice"),
    Noun("dragon", "dragons"),
    Noun("owl", "owls"),
)
PEOPLE: tuple[Noun, ...] = (
    Noun("girl", "girls", "f"),
    Noun("boy", "boys", "m"),
    Noun("king", "kings", "m"),
    Noun("queen", "queens", "f"),
    Noun("prince", "princes", "m"),
    Noun("princess", "princesses", "f"),
    Noun("child", "children"),
    Noun("friend", "friends"),
)
#: Animate nouns: they can be happy, see things and be seen.
ANIMATE: tuple[Noun, ...] = ANIMALS + PEOPLE
#: Nouns with a natural gender (for reflexives).
GENDERED: tuple[Noun, ...] = tuple(n for n in PEOPLE if n.gender)
#: Things a child can hold, find or give away.
THINGS: tuple[Noun, ...] = (
    Noun("ball", "balls"),
    Noun("hat", "hats"),
    Noun("book", "books"),
    Noun("box", "boxes"),
    Noun("toy", "toys"),
    Noun("kite", "kites"),
    Noun("apple", "apples"),
    Noun("cake", "cakes"),
    Noun("cookie", "cookies"),
    Noun("flower", "flowers"),
    Noun("shell", "shells"),
    Noun("stone", "stones"),
    Noun("star", "stars"),
    Noun("key", "keys"),
)
#: Things near which someone can be (prepositional-phrase attractors).
LANDMARKS: tuple[Noun, ...] = (
    Noun("tree", "trees"),
    Noun("house", "houses"),
    Noun("flower", "flowers"),
    Noun("stone", "stones"),
    Noun("box", "boxes"),
    Noun("hill", "hills"),
)
#: Places one can be "in" or "near" (no water: "found the key in the lake" is odd).
PLACES: tuple[str, ...] = (
    "garden",
    "forest",
    "park",
    "kitchen",
    "woods",
    "meadow",
    "village",
    "castle",
)
#: Predicative adjectives for animate subjects.
ADJECTIVES: tuple[str, ...] = (
    "happy",
    "sad",
    "sleepy",
    "hungry",
    "tired",
    "brave",
    "kind",
    "scared",
    "quiet",
    "little",
)
#: Prepositions heading a locative phrase after a noun ("the dog near the trees").
PREPOSITIONS: tuple[str, ...] = ("near", "behind", "beside", "under", "by")


@dataclass(frozen=True)
class IrregularVerb:
    """A verb whose simple past differs from its past participle.

    Attributes:
        past: Simple past ("ate").
        participle: Past participle ("eaten").
        rest: Possible completions after the verb ("the cake", "into the river").
    """

    past: str
    participle: str
    rest: tuple[str, ...]


IRREGULAR_VERBS: tuple[IrregularVerb, ...] = (
    IrregularVerb("ate", "eaten", ("the cake", "an apple", "the cookies", "the soup")),
    IrregularVerb("saw", "seen", ("the dragon", "a rainbow", "the stars", "the owl")),
    IrregularVerb("took", "taken", ("the ball", "the book", "the key", "the hat")),
    IrregularVerb(
        "gave", "given", ("the ball to the king", "a cookie to the dog", "the book to a friend")
    ),
    IrregularVerb("went", "gone", ("home", "to the park", "into the forest", "to the river")),
    IrregularVerb("fell", "fallen", ("into the river", "off the wall", "into the pond")),
    IrregularVerb("flew", "flown", ("over the trees", "to the castle", "over the hill")),
    IrregularVerb("swam", "swum", ("across the lake", "in the pond", "to the shore")),
    IrregularVerb("broke", "broken", ("the cup", "the toy", "the window", "the box")),
    IrregularVerb("chose", "chosen", ("the red hat", "a book", "the big box")),
    IrregularVerb("forgot", "forgotten", ("the key", "the book", "the way home", "the song")),
    IrregularVerb("wrote", "written", ("a letter", "a song", "a story")),
    IrregularVerb("drew", "drawn", ("a picture", "a tree", "a map")),
    IrregularVerb("grew", "grown", ("tall flowers", "big apples", "a garden")),
    IrregularVerb("began", "begun", ("the game", "the story", "a song")),
    IrregularVerb("sang", "sung", ("a song", "a happy song")),
    IrregularVerb("wore", "worn", ("a red hat", "the crown", "a coat")),
    IrregularVerb("bit", "bitten", ("the apple", "the cake", "the cookie")),
    IrregularVerb("hid", "hidden", ("the key", "the box", "the toy")),
    IrregularVerb("blew", "blown", ("out the candles", "a bubble")),
)

#: Verbs that need an object (past tense); "Tom found the ball" but not "Tom found".
TRANSITIVE_PAST: tuple[str, ...] = (
    "found",
    "brought",
    "liked",
    "needed",
    "wanted",
    "carried",
    "held",
    "took",
    "loved",
)
#: Verbs that take no object (past tense); "Tom slept" but not "Tom slept the ball".
INTRANSITIVE_PAST: tuple[str, ...] = (
    "slept",
    "laughed",
    "smiled",
    "arrived",
    "cried",
    "disappeared",
    "appeared",
    "danced",
)
#: Transitive past verbs whose object is a person (for "who" questions).
PERSON_VERBS: tuple[str, ...] = ("liked", "helped", "met", "visited", "saw", "found", "loved")
#: Verbs that embed a clause: "Tom knew that ...", "Tom knew what ...".
CLAUSE_VERBS: tuple[str, ...] = ("knew", "saw", "forgot", "remembered", "heard")
#: Verbs that embed a question: "Tom asked who ...".
QUESTION_VERBS: tuple[str, ...] = ("asked", "wondered", "knew", "forgot")

#: Reflexive pronoun of a subject: gender "m"/"f" singular, or plural.
REFLEXIVE: dict[str, str] = {"m": "himself", "f": "herself", "pl": "themselves"}
#: Frames for a reflexive object: the verb phrase before it and the words after it
#: (``{place}`` is filled from ``PLACES``).
REFLEXIVE_FRAMES: tuple[tuple[str, str], ...] = (
    ("saw", "in the water"),
    ("hurt", "in the {place}"),
    ("washed", "in the river"),
    ("hid", "in the {place}"),
    ("felt proud of", "after the race"),
    ("talked to", "in the {place}"),
    ("made", "a cake"),
    ("laughed at", "in the {place}"),
    ("dried", "by the fire"),
    ("helped", "to a cookie"),
    ("found", "in the {place}"),
    ("saw", "in the mirror"),
)
