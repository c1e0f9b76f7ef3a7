"""Entity tracking: who has what after a few hand-overs, scored by likelihood.

The paper's one gain from RL was on entity tracking (Kim and Schuster 2023 style). Each
item is a short text in which two or three children start with one thing each and pass
things on; the model must continue "Now the ball is with" with the child who holds it
last rather than one who held it before (or, for a thing that never moved, anyone else):

    Tom has the ball. Mia has the hat. Tom gives the ball to Mia. Now the ball is with
    -> " Mia" (right) versus " Tom" (wrong)
"""

from __future__ import annotations

import random

from story_env.agents.probes import lexicon as lx
from story_env.agents.probes.templates import MinimalPair
from story_env.errors import ConfigError

PHENOMENON = "entity_tracking"
#: Nouns for the things passed around (all singular, all with "the").
OBJECTS: tuple[str, ...] = ("ball", "hat", "book", "box", "toy", "kite", "apple", "cake", "key")
TRANSFER_VERBS: tuple[str, ...] = ("gives", "hands", "passes")


def entity_item(rng: random.Random) -> MinimalPair:
    """One entity-tracking item: 2-3 children, 1-3 hand-overs, a question about one thing."""
    people = rng.sample(lx.NAMES, rng.choice((2, 3)))
    things = rng.sample(OBJECTS, len(people))
    holder = dict(zip(things, people, strict=True))
    previous: dict[str, str] = {}
    sentences = [f"{person} has the {thing}." for thing, person in holder.items()]
    for _ in range(rng.randint(1, 3)):
        thing = rng.choice(things)
        giver = holder[thing]
        receiver = rng.choice([p for p in people if p != giver])
        sentences.append(f"{giver} {rng.choice(TRANSFER_VERBS)} the {thing} to {receiver}.")
        previous[thing], holder[thing] = giver, receiver
    moved = sorted(previous)
    if moved and (len(moved) == len(things) or rng.random() < 0.8):
        thing = rng.choice(moved)
        wrong = previous[thing]
        subtype = "moved"
    else:
        thing = rng.choice([t for t in things if t not in previous])
        wrong = rng.choice([p for p in people if p != holder[thing]])
        subtype = "not moved"
    transfers = len(sentences) - len(people)
    context = " ".join([*sentences, f"Now the {thing} is with"])
    return MinimalPair(
        PHENOMENON, f"{subtype}, {transfers} hand-overs", holder[thing], wrong, context
    )


def generate_entity_items(n: int, seed: int = 0) -> list[MinimalPair]:
    """``n`` distinct entity-tracking items, the same for the same seed."""
    if n < 1:
        raise ConfigError(f"the number of pairs must be >= 1, got {n}")
    rng = random.Random(f"{PHENOMENON}:{seed}")
    items: dict[str, MinimalPair] = {}
    stale = 0  # draws in a row that gave no new item
    while len(items) < n:
        item = entity_item(rng)
        stale = stale + 1 if item.context in items else 0
        items.setdefault(item.context, item)
        if stale > 1000 + 10 * len(items):
            raise ConfigError(
                f"{PHENOMENON}: only {len(items)} distinct items could be made; ask for fewer"
            )
    return list(items.values())
