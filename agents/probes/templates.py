"""BLiMP-style minimal pairs from grammar templates, in the words of children's stories.

BLiMP (Warstadt et al. 2020) generated its pairs from templates over a lexicon; these
templates do the same with the lexicon of ``story_env.agents.probes.lexicon``. Each pair is a
grammatical sentence and an ungrammatical one that differs from it in one word (a
substitution or an insertion) or in one moved word. Generation is deterministic: the
same seed gives the same pairs on every machine and Python version.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from story_env.agents.probes import lexicon as lx
from story_env.errors import ConfigError


@dataclass(frozen=True)
class MinimalPair:
    """One probe item: the model is right when it gives ``good`` the higher likelihood.

    Attributes:
        phenomenon: The probe it belongs to (e.g. ``"anaphor_agreement"``).
        subtype: The template inside the phenomenon (e.g. ``"gender"``).
        good: The grammatical sentence, or the right continuation of ``context``.
        bad: The ungrammatical sentence, or the wrong continuation.
        context: Text both continuations follow (entity tracking); empty for sentences.
    """

    phenomenon: str
    subtype: str
    good: str
    bad: str
    context: str = ""


Words = list[str]
#: A template: draws words with ``rng`` and returns (subtype, good words, bad words).
Template = Callable[[random.Random], tuple[str, Words, Words]]


def sentence(words: Words) -> str:
    """Join words into a sentence: first letter capitalised, a final period."""
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _subject(rng: random.Random, *, plural: bool | None = None) -> Words:
    """A name, or "the" and an animate noun (singular or plural)."""
    if plural is None and rng.random() < 0.4:
        return [rng.choice(lx.NAMES)]
    number = rng.random() < 0.5 if plural is None else plural
    return ["the", rng.choice(lx.ANIMATE).form(number)]


def _be(plural: bool, past: bool) -> str:
    return ("were" if plural else "was") if past else ("are" if plural else "is")


def _predicate(rng: random.Random, plural: bool) -> tuple[str, str, Words]:
    """A verb that agrees in number, its wrong-number twin, and the rest of the predicate."""
    kind = rng.randrange(3)
    if kind == 2:
        thing = rng.choice(lx.THINGS).singular
        return (
            ("have" if plural else "has"),
            ("has" if plural else "have"),
            [
                _article(thing),
                thing,
            ],
        )
    past = kind == 1
    return _be(plural, past), _be(not plural, past), [rng.choice(lx.ADJECTIVES)]


def _names(rng: random.Random, k: int) -> list[str]:
    return rng.sample(lx.NAMES, k)


def _pronoun(name: str) -> str:
    return "he" if name in lx.BOYS else "she"


# --- the phenomena ------------------------------------------------------------------------


def agreement_relative_clause(rng: random.Random) -> tuple[str, Words, Words]:
    """Subject-verb agreement across an object relative clause with a noun of the other number.

    "The dog that the girls saw was happy." / "The dog that the girls saw were happy."
    """
    plural = rng.random() < 0.5
    head, attractor = rng.sample(lx.ANIMATE, 2)
    verb, wrong, rest = _predicate(rng, plural)
    start = ["the", head.form(plural), "that", "the", attractor.form(not plural)]
    start.append(rng.choice(lx.PERSON_VERBS))
    subtype = "plural head" if plural else "singular head"
    return subtype, [*start, verb, *rest], [*start, wrong, *rest]


def agreement_prepositional_phrase(rng: random.Random) -> tuple[str, Words, Words]:
    """Subject-verb agreement across a prepositional phrase with a noun of the other number.

    "The bears near the tree are hungry." / "The bears near the tree is hungry."
    """
    plural = rng.random() < 0.5
    head, landmark = rng.choice(lx.ANIMATE), rng.choice(lx.LANDMARKS)
    verb, wrong, rest = _predicate(rng, plural)
    start = ["the", head.form(plural), rng.choice(lx.PREPOSITIONS), "the"]
    start.append(landmark.form(not plural))
    subtype = "plural head" if plural else "singular head"
    return subtype, [*start, verb, *rest], [*start, wrong, *rest]


SINGULAR_DETERMINERS = ("this", "that", "a", "one", "every")
PLURAL_DETERMINERS = ("these", "those", "two", "three", "many", "several")


def determiner_noun_agreement(rng: random.Random) -> tuple[str, Words, Words]:
    """A determiner and its noun agree in number (BLiMP's determiner_noun_agreement).

    "Mia found these shells in the garden." / "Mia found these shell in the garden."
    """
    plural = rng.random() < 0.5
    noun = rng.choice(lx.THINGS + lx.ANIMALS)
    det = rng.choice(PLURAL_DETERMINERS if plural else SINGULAR_DETERMINERS)
    if det == "a":
        det = _article(noun.singular)
    start = [*_subject(rng), rng.choice(("found", "saw", "carried", "liked", "wanted")), det]
    end = ["in", "the", rng.choice(lx.PLACES)]
    subtype = "plural determiner" if plural else "singular determiner"
    return subtype, [*start, noun.form(plural), *end], [*start, noun.form(not plural), *end]


def anaphor_agreement(rng: random.Random) -> tuple[str, Words, Words]:
    """A reflexive agrees with its subject in gender and number.

    "Tom hurt himself on a rock." / "Tom hurt herself on a rock."
    """
    verb, tail = rng.choice(lx.REFLEXIVE_FRAMES)
    if rng.random() < 0.6:  # gender: a singular subject with a natural gender
        if rng.random() < 0.5:
            name = rng.choice(lx.NAMES)
            subject, gender = [name], ("m" if name in lx.BOYS else "f")
        else:
            noun = rng.choice(lx.GENDERED)
            subject, gender = ["the", noun.singular], noun.gender
        good, bad, subtype = (
            lx.REFLEXIVE[gender],
            lx.REFLEXIVE["f" if gender == "m" else "m"],
            "gender",
        )
    elif rng.random() < 0.5:  # number: a plural subject
        noun = rng.choice(lx.ANIMATE)
        subject, subtype = ["the", noun.plural], "number"
        good, bad = lx.REFLEXIVE["pl"], lx.REFLEXIVE[noun.gender or rng.choice("mf")]
    else:  # number: a singular subject with a natural gender
        noun = rng.choice(lx.GENDERED)
        subject, subtype = ["the", noun.singular], "number"
        good, bad = lx.REFLEXIVE[noun.gender], lx.REFLEXIVE["pl"]
    start = [*subject, *verb.split()]
    end = tail.format(place=rng.choice(lx.PLACES)).split()
    return subtype, [*start, good, *end], [*start, bad, *end]


def irregular_past_tense(rng: random.Random) -> tuple[str, Words, Words]:
    """Simple past versus past participle of irregular verbs.

    "Tom ate the cake." / "Tom eaten the cake."; "Tom had eaten the cake." / "Tom had ate
    the cake."
    """
    verb = rng.choice(lx.IRREGULAR_VERBS)
    subject, rest = _subject(rng), rng.choice(verb.rest).split()
    if rng.random() < 0.5:
        return "simple past", [*subject, verb.past, *rest], [*subject, verb.participle, *rest]
    start = [*subject, "had"]
    return "perfect", [*start, verb.participle, *rest], [*start, verb.past, *rest]


def npi_licensing(rng: random.Random) -> tuple[str, Words, Words]:
    """Negative polarity items ("ever", "any") need a licensor (negation, "no", "only").

    "No dog had ever seen the dragon." / "The dog had ever seen the dragon."
    """
    kind = rng.randrange(5)
    verb = rng.choice(lx.IRREGULAR_VERBS)
    rest = rng.choice(verb.rest).split()
    tail = ["had", "ever", verb.participle, *rest]
    if kind == 0:
        noun = rng.choice(lx.ANIMATE).singular
        return "no / the", ["no", noun, *tail], ["the", noun, *tail]
    if kind == 1:
        name = rng.choice(lx.NAMES)
        return "only / even", ["only", name, *tail], ["even", name, *tail]
    if kind == 2:
        return "nobody / everyone", ["nobody", *tail], ["everyone", *tail]
    things = ["any", rng.choice(lx.THINGS + lx.ANIMALS).plural, "in", "the", rng.choice(lx.PLACES)]
    if kind == 3:
        start = [rng.choice(lx.NAMES), "had"]
        end = [rng.choice(("seen", "found", "taken")), *things]
        return "not / already", [*start, "not", *end], [*start, "already", *end]
    return (
        "there were not / also",
        ["there", "were", "not", *things],
        [
            "there",
            "were",
            "also",
            *things,
        ],
    )


def argument_structure(rng: random.Random) -> tuple[str, Words, Words]:
    """Transitive verbs need an object and intransitive verbs take none.

    "Tom found the ball near the river." / "Tom slept the ball near the river."
    """
    subject = _subject(rng)
    transitive, intransitive = rng.choice(lx.TRANSITIVE_PAST), rng.choice(lx.INTRANSITIVE_PAST)
    place = ["near", "the", rng.choice(lx.PLACES)]
    if rng.random() < 0.5:
        obj = ["the", rng.choice(lx.THINGS).singular]
        return (
            "object present",
            [*subject, transitive, *obj, *place],
            [*subject, intransitive, *obj, *place],
        )
    return "no object", [*subject, intransitive, *place], [*subject, transitive, *place]


def filler_gap(rng: random.Random) -> tuple[str, Words, Words]:
    """A wh-word needs a gap and "that" needs none (BLiMP's wh_vs_that pairs).

    "Tom knew what Mia found." / "Tom knew that Mia found."; "Tom knew that Mia found the
    ball." / "Tom knew what Mia found the ball."
    """
    a, b, c = _names(rng, 3)
    if rng.random() < 0.5:
        wh, verb = "what", rng.choice(lx.TRANSITIVE_PAST)
        obj = ["the", rng.choice(lx.THINGS).singular]
    else:
        wh, verb, obj = "who", rng.choice(lx.PERSON_VERBS), [c]
    clause_verb = rng.choice(lx.CLAUSE_VERBS)
    kind = rng.randrange(3)
    if kind == 0:
        return "gap", [a, clause_verb, wh, b, verb], [a, clause_verb, "that", b, verb]
    if kind == 1:
        return (
            "no gap",
            [a, clause_verb, "that", b, verb, *obj],
            [a, clause_verb, wh, b, verb, *obj],
        )
    d = rng.choice([n for n in lx.NAMES if n not in (a, b, c)])
    middle = [b, "said", d, verb]
    return "long-distance gap", [a, clause_verb, wh, *middle], [a, clause_verb, "that", *middle]


def island_effects(rng: random.Random) -> tuple[str, Words, Words]:
    """Wh-words cannot be moved out of islands (adjuncts, coordinations, wh-clauses,
    left branches).

    "Tom asked who Mia saw before she met Sam." / "Tom asked who Mia saw Sam before she
    met."
    """
    a, b, c = _names(rng, 3)
    ask = rng.choice(lx.QUESTION_VERBS)
    kind = rng.randrange(4)
    if kind == 0:
        thing = rng.choice(lx.THINGS).singular
        verb = rng.choice(lx.TRANSITIVE_PAST)
        return "left branch", [a, ask, "whose", thing, b, verb], [a, ask, "whose", b, verb, thing]
    v1, v2 = rng.sample(lx.PERSON_VERBS, 2)
    if kind == 1:
        link = [rng.choice(("before", "after")), _pronoun(b), v2]
        return "adjunct", [a, ask, "who", b, v1, *link, c], [a, ask, "who", b, v1, c, *link]
    if kind == 2:  # "who Mia and Sam helped" / "who Mia helped and Sam" (a conjunct moved)
        return (
            "coordinate structure",
            [a, ask, "who", b, "and", c, v1],
            [a, ask, "who", b, v1, "and", c],
        )
    verb = rng.choice(lx.TRANSITIVE_PAST)  # "what Mia said Sam found" / "what Mia said who found"
    return (
        "wh-island",
        [a, ask, "what", b, "said", c, verb],
        [a, ask, "what", b, "said", "who", verb],
    )


def existential_there(rng: random.Random) -> tuple[str, Words, Words]:
    """The verb of "there is/are" agrees with the noun after it.

    "There were two frogs in the pond." / "There was two frogs in the pond."
    """
    plural, past = rng.random() < 0.5, rng.random() < 0.5
    noun = rng.choice(lx.ANIMALS + lx.THINGS)
    if plural:
        det = rng.choice(("two", "three", "many", "some"))
    else:
        det = rng.choice((_article(noun.singular), "one"))
    rest = [det, noun.form(plural), rng.choice(("in", "near", "by")), "the"]
    rest.append(rng.choice(lx.PLACES))
    subtype = "plural" if plural else "singular"
    return subtype, ["there", _be(plural, past), *rest], ["there", _be(not plural, past), *rest]


#: The formal-competence phenomena, by name.
PHENOMENA: dict[str, Template] = {
    "agreement_relative_clause": agreement_relative_clause,
    "agreement_prepositional_phrase": agreement_prepositional_phrase,
    "determiner_noun_agreement": determiner_noun_agreement,
    "anaphor_agreement": anaphor_agreement,
    "irregular_past_tense": irregular_past_tense,
    "npi_licensing": npi_licensing,
    "argument_structure": argument_structure,
    "filler_gap": filler_gap,
    "island_effects": island_effects,
    "existential_there": existential_there,
}


def generate_pairs(phenomenon: str, n: int, seed: int = 0) -> list[MinimalPair]:
    """``n`` distinct minimal pairs of one phenomenon, the same for the same seed.

    Raises:
        ConfigError: The phenomenon is unknown, ``n`` < 1, or its templates cannot make
            ``n`` distinct pairs.
    """
    if phenomenon not in PHENOMENA:
        from story_env.errors import did_you_mean

        raise ConfigError(
            f"unknown phenomenon {phenomenon!r}.{did_you_mean(phenomenon, PHENOMENA)} "
            f"Known: {', '.join(PHENOMENA)}"
        )
    if n < 1:
        raise ConfigError(f"the number of pairs must be >= 1, got {n}")
    template = PHENOMENA[phenomenon]
    rng = random.Random(f"{phenomenon}:{seed}")  # str seeds hash with SHA-512: stable
    pairs: dict[str, MinimalPair] = {}
    stale = 0  # draws in a row that gave no new pair
    while len(pairs) < n:
        subtype, good, bad = template(rng)
        pair = MinimalPair(phenomenon, subtype, sentence(good), sentence(bad))
        stale = stale + 1 if pair.good in pairs else 0
        pairs.setdefault(pair.good, pair)
        if stale > 1000 + 10 * len(pairs):  # the template space is (all but) exhausted
            raise ConfigError(
                f"{phenomenon}: the templates made only {len(pairs)} distinct pairs, fewer "
                f"than the {n} asked for; ask for fewer pairs"
            )
    return list(pairs.values())
