"""Formal-competence probes built by the project: BLiMP-style minimal pairs from grammar
templates over a children's-story lexicon, and an entity-tracking probe, all scored by
likelihood. ``storytelling probe`` runs them on a student or a checkpoint.
"""

from story_env.agents.probes.entity import generate_entity_items
from story_env.agents.probes.scoring import (
    PROBES,
    ProbeReport,
    ProbeScore,
    continuation_logprobs,
    probe_items,
    run_probes,
    wilson_interval,
)
from story_env.agents.probes.templates import PHENOMENA, MinimalPair, generate_pairs

__all__ = [
    "PHENOMENA",
    "PROBES",
    "MinimalPair",
    "ProbeReport",
    "ProbeScore",
    "continuation_logprobs",
    "generate_entity_items",
    "generate_pairs",
    "probe_items",
    "run_probes",
    "wilson_interval",
]
