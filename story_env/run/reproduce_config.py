"""``ReproConfig``: the settings of the paper's experiment (``story_env.run.reproduce``).

The RL runs' settings are one ``TrainConfig`` (``ReproConfig.rl``); each stage sets its
own student, seed and budget. Config files of the earlier flat form (the RL settings at
the top) read as ``upgrade_flat`` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from story_env.agents.pretraining.pretrain import ModelConfig, PretrainConfig
from story_env.arguments import EVAL_STORIES
from story_env.errors import ConfigError
from story_env.run.config import TrainConfig
from story_env.run.judging import JudgeSpec, resolve_judges
from story_env.run_folder import public_config

#: A stage's own settings of its RL run, set by ``ReproConfig.rl_config``, not by ``rl``.
STAGE_SETTINGS = ("student", "steps", "word_budget", "seed", "checkpoint_every")
#: The RL settings of the experiment unless its ``rl`` says otherwise: the paper's PPO.
RL_DEFAULTS: dict[str, Any] = {
    "algorithm": "ppo",
    "teacher": "heuristic",
    "num_envs": 8,
    "max_new_tokens": 90,
    "algo_kwargs": {"n_steps": 64, "batch_size": 256, "n_epochs": 2, "learning_rate": 3e-5},
    "kl_coef": 0.01,
}
# Top-level fields of config files written before ``rl`` held the RL settings.
_FLAT_RL = (
    "teacher",
    "teacher_kwargs",
    "num_envs",
    "max_new_tokens",
    "algo_kwargs",
    "kl_coef",
    "kl_per_story",
)


def _rl(settings: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    """The experiment's RL settings: a ``TrainConfig`` as given, or a mapping of its fields
    over ``RL_DEFAULTS`` (whose ``algo_kwargs`` are PPO's: they hold only for ``ppo``)."""
    if isinstance(settings, TrainConfig):
        return settings
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(
            f"rl must be a JSON object of TrainConfig fields, got {settings!r}; e.g. "
            '{"teacher": "lm", "teacher_kwargs": {"dtype": "bfloat16"}}'
        )
    given = dict(settings or {})
    stage = sorted(set(given) & set(STAGE_SETTINGS))
    if stage:
        raise ConfigError(
            f"rl sets {stage}, which each stage sets itself (student: the checkpoint; steps and "
            "word_budget: interactive_words; seed: seeds); drop them from rl"
        )
    defaults = dict(RL_DEFAULTS)
    if given.get("algorithm", defaults["algorithm"]) != defaults["algorithm"]:
        del defaults["algo_kwargs"]  # the paper's PPO settings; another algorithm: its own
    try:
        return TrainConfig(**{**defaults, **given})
    except TypeError as exc:  # an unknown field
        raise ConfigError(f"rl: {exc}; rl takes TrainConfig's fields (docs/training.md)") from exc


def upgrade_flat(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config written before ``rl`` held the RL settings (``teacher``, ``num_envs``...
    at the top), in today's form: those fields move into ``rl``, over the settings the
    earlier version trained with (the paper's PPO at ``TrainConfig``'s other defaults)."""
    flat = {k: data[k] for k in _FLAT_RL if k in data}
    if not flat:
        return dict(data)
    if "rl" in data:
        raise ConfigError(
            f"the config gives both rl and {sorted(flat)}; move {sorted(flat)} into rl"
        )
    rest = {k: v for k, v in data.items() if k not in flat}
    return {**rest, "rl": {"algorithm": "ppo", **flat}}


@dataclass(frozen=True)
class ReproConfig:
    """The experiment's settings (saved as ``config.json``).

    Attributes:
        budgets: Pretraining word budgets (checkpoints of one run), at least 5 spanning >= 20x.
        interactive_words: RL budget per run, counted as the paper counts.
        seeds: RL seeds per checkpoint (the controls run at every one too).
        rl: The RL runs' settings, a ``TrainConfig`` (or a mapping of its fields over
            ``RL_DEFAULTS``: the paper's PPO, 8 envs, 90-token stories): algorithm,
            teacher (the reward and the evaluations' teacher; the random-reward control
            swaps in ``random``), story length, envs, KL, algorithm settings. Each stage
            sets ``STAGE_SETTINGS`` itself. The evaluations write ``rl.num_envs`` stories
            at once.
        judges: Held-out judges grading the same evaluation stories (``NAME``,
            ``NAME:MODEL`` or ``NAME:{json}``); ``None`` = the default held-out judge.
        control_budgets: Checkpoints the random-reward control starts from, each at every
            seed; ``None`` = the middle budget and the top one; ``()`` = no control.
        probe_pairs: Items per probe, before and after RL at every budget (0 = no probes).
        eval_stories: Stories per evaluation (fixed seeds, same for before and after), and
            the most reference stories.
        audit: Audit every evaluation (stage 6); off when the runs' own evaluations,
            which report words per story and every judge, are read with the same code.
        model: The student architecture.
        pretrain_batch_size: Sequences per pretraining step.
        pretrain_block_size: Tokens per pretraining sequence.
        pretrain_lr: Peak learning rate of the pretraining run (``PretrainConfig.lr``).
        train_file: Stories to pretrain on (one per line); default the packaged corpus.
        val_file: Validation stories; default the packaged corpus.
    """

    budgets: tuple[int, ...] = (25_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
    interactive_words: int = 20_000
    seeds: tuple[int, ...] = (0, 1)
    rl: TrainConfig = field(default_factory=lambda: _rl(None))
    judges: tuple[str, ...] | None = None
    control_budgets: tuple[int, ...] | None = None
    probe_pairs: int = 100
    eval_stories: int = EVAL_STORIES
    audit: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain_batch_size: int = 16
    pretrain_block_size: int = 128
    pretrain_lr: float = PretrainConfig.lr
    train_file: str | None = None
    val_file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rl", _rl(self.rl))
        budgets = sorted(self.budgets)
        if len(budgets) < 2 or budgets[0] < 1:
            raise ConfigError(
                f"budgets must be at least two positive word counts, got {self.budgets}"
            )
        stray = sorted(set(self.control_budgets or ()) - set(budgets))
        if stray:
            raise ConfigError(
                f"control_budgets {stray} are not among the budgets {budgets}; a control "
                "starts from a checkpoint of the ladder"
            )
        # a judge that does not parse fails here, before any stage runs
        resolve_judges(self.judges, self.teacher, self.teacher_kwargs)
        pairs = self.probe_pairs
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 0:
            raise ConfigError(
                f"probe_pairs must be a whole number >= 0 (0 = no probes), got {pairs!r}"
            )

    @property
    def teacher(self) -> str:
        """The experiment's teacher (``rl.teacher``)."""
        return self.rl.teacher

    @property
    def teacher_kwargs(self) -> Mapping[str, Any]:
        """The teacher's keyword arguments (``rl.teacher_kwargs``)."""
        return self.rl.teacher_kwargs

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``config.json`` holds them (``rl`` without ``STAGE_SETTINGS``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rl"}
        data["model"] = asdict(self.model)
        rl = self.rl.to_dict()
        data["rl"] = {k: v for k, v in rl.items() if k not in STAGE_SETTINGS}
        return public_config(data)

    @classmethod
    def from_json(cls, path: str | Path) -> ReproConfig:
        """Read a config file: a JSON object of these fields (``model`` and ``rl`` as
        objects). A file of the earlier flat form (``teacher``, ``num_envs``... at the
        top) is read as ``upgrade_flat`` says."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object of ReproConfig fields")
        if "control_budget" in data:
            raise ConfigError(
                f"{path}: control_budget (one control at one seed) became control_budgets, "
                "a list of checkpoints each controlled at every seed: write "
                f'"control_budgets": [{data["control_budget"] or ""}] instead, or leave it '
                "out for the default (the middle budget and the top one)"
            )
        data = upgrade_flat(data)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"{path}: unknown fields {unknown}; known: {[f.name for f in fields(cls)]}"
            )
        if isinstance(data.get("model"), dict):
            data["model"] = ModelConfig(**data["model"])
        for key in ("budgets", "seeds", "judges", "control_budgets"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def controls(self) -> tuple[int, ...]:
        """The checkpoints the random-reward control starts from: ``control_budgets``, or
        the middle budget and the top one (where a gain that is not the teacher's doing
        would mislead most: the gains to compare with grow with pretraining)."""
        if self.control_budgets is not None:
            return tuple(sorted(set(self.control_budgets)))
        budgets = sorted(self.budgets)
        return tuple(sorted({budgets[len(budgets) // 2], budgets[-1]}))

    @property
    def judge_specs(self) -> list[JudgeSpec]:
        """The held-out judges, resolved (the default one for the teacher if ``None``)."""
        return resolve_judges(self.judges, self.teacher, self.teacher_kwargs)

    def rl_config(self, student: str, control: bool, seed: int) -> TrainConfig:
        """The training settings of one RL stage: ``rl`` from ``student`` (the random-reward
        teacher for a ``control``), ended by the interactive word budget (``steps`` is only
        a ceiling)."""
        words_per_story = 16 + 3
        steps = int(self.interactive_words / words_per_story * self.rl.max_new_tokens * 2)
        settings = {k: v for k, v in self.rl.to_dict().items() if k not in STAGE_SETTINGS}
        if control:
            settings.update(teacher="random", teacher_kwargs={})
        return TrainConfig(
            **settings,
            student=student,
            steps=steps,
            word_budget=self.interactive_words,
            seed=seed,
            checkpoint_every=max(512, steps // 10),
        )


def smoke_config(train_file: str, val_file: str) -> ReproConfig:
    """Tiny budgets for a test run of the whole pipeline (well under two minutes), with the
    ``random`` teacher as its held-out judge (the columns are filled, nothing is loaded)
    and a few probe items."""
    return ReproConfig(
        budgets=(500, 1_000, 2_000, 5_000, 10_000),
        interactive_words=200,
        seeds=(0, 1),
        eval_stories=8,
        rl={
            "num_envs": 4,
            "max_new_tokens": 16,
            "algo_kwargs": {"n_steps": 16, "batch_size": 64, "n_epochs": 1},
        },
        model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=128, vocab_size=400),
        pretrain_batch_size=4,
        pretrain_block_size=32,
        pretrain_lr=3e-3,
        train_file=train_file,
        val_file=val_file,
        # a judge that costs nothing: the smoke run checks the pipeline, not the stories
        judges=("random",),
        probe_pairs=4,
    )
