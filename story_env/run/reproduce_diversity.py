"""The reproduction report's diversity table: each audited evaluation's diversity and
distribution (``audit.json``'s ``diversity``, from ``story_env.run.diversity``) beside
real stories cut to the same lengths. ``story_env.run.reproduce_report`` puts it in
``results.md``; nothing is measured here, and a figure that is missing is said to be
missing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from story_env.run.diversity import table_lines

if TYPE_CHECKING:
    from story_env.run.reproduce import ReproConfig


def _audit_label(key: str) -> tuple[int, int, str]:
    """A sort key and a row name for an audited evaluation (``start/500``, ``rl/500-seed1``,
    ``control/500-seed1``)."""
    kind, name = key.split("/")
    budget, _, seed = name.partition("-seed")
    order = {"start": 0, "rl": 1, "control": 2}.get(kind, 3)
    words = f"{int(budget):,}"
    text = {
        "start": f"{words}: before RL",
        "rl": f"{words}: after RL, seed {seed}",
        "control": f"{words}: random-reward control, seed {seed}",
    }.get(kind, key)
    return int(budget), order, text


def diversity_lines(config: ReproConfig, audit: dict[str, Any]) -> list[str]:
    """Each audited evaluation's diversity and distribution (``audit.json``'s
    ``diversity``), with real stories cut to the same lengths as the reference row of
    each checkpoint before RL: whether RL made the stories alike."""
    measured = {k: v["diversity"] for k, v in audit.items() if "diversity" in v}
    if not measured:
        return []
    keys = sorted(measured, key=_audit_label)
    rows: list[tuple[str, dict[str, Any]]] = []
    for key in keys:
        label = _audit_label(key)[2]
        if key.startswith("start/"):
            rows.append(
                (f"{label.split(':')[0]}: real stories, same lengths", measured[key]["reference"])
            )
        rows.append((label, measured[key]))
    first = measured[keys[0]]
    mauve = (
        f"MAUVE against held-out real stories of the same lengths (features: "
        f"{first['mauve_features']})"
        if first["mauve"] is not None
        else f"MAUVE not measured ({first['mauve_note']})"
    )
    unaudited = len(audit) - len(measured)
    note = (
        f" {unaudited} audited evaluation(s) hold no diversity figures (audited before "
        "they were recorded): run their audit stages again to fill them."
        if unaudited
        else ""
    )
    return [
        "",
        f"Diversity and distribution of the audited evaluations ({config.eval_stories} stories "
        "each, the same seeds): distinct-n (unique word n-grams / all), zlib ratio "
        "(compressed / raw bytes; lower is more repetitive), the share of the most common "
        f"two-word opening, median words per story; {mauve} [{first['ci_method']}]. Each "
        "checkpoint's reference row: real validation stories cut to the lengths of its "
        f"stories before RL.{note}",
        "",
        *table_lines(rows),
    ]


__all__ = ["diversity_lines"]
