"""Probe a student or a checkpoint for formal competence: ``storytelling probe``.

Resolves what to probe (a registered student, a model folder such as a ``storytelling
pretrain`` checkpoint, or a ``storytelling train`` run folder whose policy's LM is the
trained student) to a causal LM and its tokenizer, then runs ``story_env.agents.probes``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from story_env.arguments import MAX_STORIES, json_object, seed
from story_env.errors import ConfigError


def _student_lm(student: str, student_kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
    from transformers import PreTrainedModel

    from story_env.registry import resolve_student

    source = resolve_student(student, student_kwargs)
    if not isinstance(getattr(source, "model", None), PreTrainedModel):
        raise ConfigError(
            f"student {student!r} has no language model to probe; probe an LM student "
            "(tiny, smollm2, a model folder) or a checkpoint"
        )
    return source.model, source.tokenizer


def _policy_lm(checkpoint: Path) -> tuple[Any, Any]:
    """The LM inside a trained SB3 policy, and the tokenizer of the student it started from."""
    from story_env.registry import get_algorithm, resolve_student

    config_file = checkpoint.parent / "config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"{str(checkpoint)!r} has no config.json beside it; give a `storytelling train` "
            "run folder"
        )
    run_config = json.loads(config_file.read_text())
    algorithm = get_algorithm(run_config["algorithm"]).load()
    policy = algorithm.load(checkpoint, device="cpu").policy
    tokenizer = resolve_student(
        run_config["student"], run_config.get("student_kwargs") or {}
    ).tokenizer
    return policy.features_extractor.model, tokenizer


def load_probe_target(
    *,
    student: str | None = None,
    checkpoint: str | Path | None = None,
    student_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, str]:
    """The causal LM, tokenizer and a label for what is probed.

    Args:
        student: A registered LM student or a model folder (default ``tiny``).
        checkpoint: A ``storytelling pretrain`` checkpoint folder (a transformers model
            folder), or a ``storytelling train`` run folder or its ``checkpoint.zip``.
        student_kwargs: Keyword arguments of the student's factory.

    Raises:
        ConfigError: Both or an unusable ``checkpoint`` given, or a student without an LM.
    """
    from story_env.run_folder import CHECKPOINT

    if checkpoint is None:
        name = student or "tiny"
        model, tokenizer = _student_lm(name, dict(student_kwargs or {}))
        return model, tokenizer, f"student {name}"
    if student is not None:
        raise ConfigError("give either a student or a checkpoint, not both")
    path = Path(checkpoint).expanduser()
    if path.is_file() and path.suffix == ".zip":
        return (*_policy_lm(path), f"checkpoint {path}")
    if path.is_dir() and (path / CHECKPOINT).is_file():
        return (*_policy_lm(path / CHECKPOINT), f"checkpoint {path}")
    inner = sorted(p.name for p in path.glob("words-*") if p.is_dir()) if path.is_dir() else []
    if inner:
        raise ConfigError(
            f"{str(path)!r} is a pretraining run folder; give one of its checkpoints, "
            f"e.g. {str(path / inner[-1])!r} (it holds {', '.join(inner)})"
        )
    if path.is_dir() and (path / "config.json").is_file():
        model, tokenizer = _student_lm("hf", {"path": str(path)})
        return model, tokenizer, f"checkpoint {path}"
    raise ConfigError(
        f"no checkpoint at {str(path)!r}; give a `storytelling pretrain` checkpoint folder "
        "(config.json and weights) or a `storytelling train` run folder (checkpoint.zip)"
    )


def probe(
    *,
    student: str | None = None,
    checkpoint: str | Path | None = None,
    student_kwargs: Mapping[str, Any] | None = None,
    pairs: int = 100,
    seed: int = 0,
    probes: Sequence[str] | None = None,
) -> Any:
    """Run the probes on a student or checkpoint; returns an ``story_env.agents.probes.ProbeReport``."""
    from story_env.agents.probes import run_probes

    model, tokenizer, _ = load_probe_target(
        student=student, checkpoint=checkpoint, student_kwargs=student_kwargs
    )
    return run_probes(model, tokenizer, pairs=pairs, seed=seed, probes=probes)


def cmd_probe(args: argparse.Namespace) -> int:
    from story_env.agents.probes import run_probes

    if args.pairs < 1:
        raise ConfigError(f"--pairs must be >= 1, got {args.pairs}")
    if args.pairs > MAX_STORIES:
        raise ConfigError(f"--pairs must be <= {MAX_STORIES}, got {args.pairs}")
    probes = [p.strip() for p in args.probes.split(",") if p.strip()] if args.probes else None
    model, tokenizer, label = load_probe_target(
        student=args.student, checkpoint=args.checkpoint, student_kwargs=args.student_kwargs
    )
    report = run_probes(model, tokenizer, pairs=args.pairs, seed=args.seed, probes=probes)
    print(f"{label}: {args.pairs} pairs per probe, seed {args.seed}")
    print(report.table())
    if args.json:
        data = {"target": label, "pairs": args.pairs, **report.to_dict()}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


def add_probe(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group()
    what.add_argument("--student", help="LM student name or model folder (default: tiny)")
    what.add_argument(
        "--checkpoint",
        help="a `storytelling pretrain` checkpoint folder or a `storytelling train` run folder",
    )
    p.add_argument(
        "--student-kwargs", type=json_object, default=None, help="JSON object for the student"
    )
    p.add_argument("--pairs", type=int, default=100, help="items per probe (default: 100)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the templates (default: 0)")
    p.add_argument("--probes", help="comma-separated subset of the probes (default: all)")
    p.add_argument("--json", help="also write the report to this file")
    p.set_defaults(func=cmd_probe)
