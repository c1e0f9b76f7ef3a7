"""Next-word-prediction pretraining of a small GPT-style student, by words seen.

The budget is counted as the paper counts it: words of training text the model has
been trained to predict, epochs repeating (``--words 2000000`` on a 1M-word corpus is
two epochs). The run stops after exactly that many words (the last batch is cut at the
word boundary), writes ``save_pretrained`` checkpoints at the requested word counts,
reports validation perplexity, and resumes from its last state after an interruption.
The run folder's guard and atomic writes are ``story_env.run_folder``'s: a folder that
holds a run needs ``resume``, and a resume must keep every setting of ``config.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from story_env.errors import ConfigError
from story_env.loading import weight_io
from story_env.run_folder import (
    check_resume,
    prepare,
    public_config,
    read_config,
    refuse_restart,
    write_atomic_with,
    write_config,
    write_folder_atomic,
)

EOS = "<|endoftext|>"
STATE_FILE = "state.pt"
TOKENIZER_DIR = "tokenizer"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the GPT-2-style student (the paper's is 12 x 768, ours is CPU-sized).

    Attributes:
        n_layer: Transformer blocks.
        n_embd: Hidden size.
        n_head: Attention heads.
        n_positions: Longest sequence (prompt + story) the model can read.
        vocab_size: Byte-level BPE vocabulary trained on the corpus.
    """

    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 256
    vocab_size: int = 4096


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run.

    Attributes:
        words: Total words seen at the end of the run (epochs repeat the corpus).
        save_at: Word counts at which to write a checkpoint (the end is always saved).
        block_size: Tokens per training sequence.
        batch_size: Sequences per optimizer step.
        lr: Peak learning rate (linear warmup, cosine decay over the word budget).
        warmup: Fraction of the budget spent warming up.
        weight_decay: AdamW weight decay.
        seed: Seeds the data order, initialisation and dropout.
        state_every_steps: Write the resumable state every this many steps.
        val_tokens: Validation tokens used for perplexity.
        model: The model's shape.
    """

    words: int
    save_at: tuple[int, ...] = ()
    block_size: int = 128
    batch_size: int = 16
    lr: float = 1e-3
    warmup: float = 0.02
    weight_decay: float = 0.1
    seed: int = 0
    state_every_steps: int = 50
    val_tokens: int = 32_768
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if (
            isinstance(self.lr, bool)
            or not isinstance(self.lr, int | float)
            or not math.isfinite(self.lr)
            or self.lr <= 0
        ):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr!r}; e.g. --lr 1e-3")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**32
        ):
            raise ConfigError(
                f"--seed must be a whole number from 0 to {2**32 - 1}, got {self.seed!r}"
            )
        sizes = {
            "--block-size": self.block_size,
            "--batch-size": self.batch_size,
            "--state-every": self.state_every_steps,
            "--layers": self.model.n_layer,
            "--embd": self.model.n_embd,
            "--heads": self.model.n_head,
            "--positions": self.model.n_positions,
            "--vocab-size": self.model.vocab_size,
        }
        for flag, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**20:
                raise ConfigError(f"{flag} must be a whole number from 1 to {2**20}, got {value!r}")
        if self.words < 1:
            raise ConfigError(f"--words must be >= 1, got {self.words}")
        bad = [w for w in self.save_at if not 0 < w <= self.words]
        if bad:
            raise ConfigError(f"--save-at values {bad} must be in (0, words={self.words}]")
        if self.model.n_embd % self.model.n_head:
            raise ConfigError(
                f"n_embd {self.model.n_embd} must be divisible by n_head {self.model.n_head}"
            )


# --- tokenizer ------------------------------------------------------------------------


def train_tokenizer(stories: Sequence[str], vocab_size: int) -> Any:
    """Train a byte-level BPE tokenizer on ``stories``; returns a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ConfigError(f"vocab_size must be >= 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((" " + s for s in stories), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=EOS
    )


def encode_stream(tokenizer: Any, stories: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One token stream of all stories (each `` story`` + EOS) and a word-start flag per token.

    A token's flag is 1 when a whitespace-separated word starts inside it, so the flags
    of a stretch of tokens add up to the words of that stretch (``str.split`` words).
    """
    eos = tokenizer.eos_token_id
    ids: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    batch = 2048
    for start in range(0, len(stories), batch):
        texts = [" " + s for s in stories[start : start + batch]]
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        for text, tok_ids, offsets in zip(
            texts, enc["input_ids"], enc["offset_mapping"], strict=True
        ):
            word_starts = np.array([m for m in _word_starts(text)], dtype=np.int64)
            off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            counts = np.searchsorted(word_starts, off[:, 1]) - np.searchsorted(
                word_starts, off[:, 0]
            )
            ids.append(np.append(np.asarray(tok_ids, dtype=np.int64), eos))
            flags.append(np.append(counts.astype(np.int64), 0))
    return np.concatenate(ids), np.concatenate(flags)


def _word_starts(text: str) -> Iterator[int]:
    previous_space = True
    for i, ch in enumerate(text):
        space = ch.isspace()
        if previous_space and not space:
            yield i
        previous_space = space


# --- model ------------------------------------------------------------------------------


def build_model(config: ModelConfig, eos_id: int, seed: int) -> Any:
    """A freshly initialised GPT-2-style causal LM (transformers)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    hf_config = GPT2Config(
        **asdict(config),  # n_layer, n_embd, n_head, n_positions, vocab_size
        **dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id"), eos_id),
        **dict.fromkeys(("resid_pdrop", "embd_pdrop", "attn_pdrop"), 0.0),  # no dropout
        # GPT-2's tanh-approximated GELU as torch's one kernel rather than gelu_new's five
        # Python operations: the same function (2e-7 apart in float32), a tenth less time
        # per forward and backward pass of the tiny student (docs/benchmarks.md)
        activation_function="gelu_pytorch_tanh",
    )
    return GPT2LMHeadModel(hf_config)


# --- training data ----------------------------------------------------------------------


def _windows(n_tokens: int, block: int) -> np.ndarray:
    """Start offsets of the (block + 1)-token training windows that tile the stream."""
    return np.arange(0, n_tokens - block - 1, block, dtype=np.int64)


@dataclass
class _Position:
    """Where a run stands: optimizer steps, words seen, and its place in the epoch's order."""

    step: int
    words_seen: int
    epoch: int
    position: int


class _TrainingWindows:
    """The training stream cut into (block + 1)-token windows, drawn in a seeded order.

    Each epoch visits every window once, in the order ``default_rng([seed, epoch])``
    gives, so a resumed run draws exactly the batches an uninterrupted one would.
    """

    def __init__(self, ids: np.ndarray, flags: np.ndarray, block: int, seed: int) -> None:
        self.ids, self.flags, self.block, self.seed = ids, flags, block, seed
        self.starts = _windows(len(ids), block)
        if len(self.starts) == 0:
            raise ConfigError(
                f"the training text has {len(ids)} tokens, fewer than one block of {block}"
            )
        # words predicted in each window (targets are tokens 1..block of the window)
        flag_cumsum = np.concatenate([[0], np.cumsum(flags)])
        self.words = flag_cumsum[self.starts + block + 1] - flag_cumsum[self.starts + 1]
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The order in which ``epoch`` visits the windows."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = (epoch, rng.permutation(len(self.starts)))
        return self._order[1]

    def draw(self, at: _Position, batch: int) -> list[int]:
        """The next ``batch`` windows; moves ``at`` on (into the next epoch at an epoch's end)."""
        picked: list[int] = []
        while len(picked) < batch:
            if at.position == len(self.starts):
                at.epoch, at.position = at.epoch + 1, 0
            picked.append(int(self.order(at.epoch)[at.position]))
            at.position += 1
        return picked

    def tensors(self, picked: list[int]) -> tuple[torch.Tensor, np.ndarray]:
        """The windows' tokens (batch, block + 1) and their targets' word-start flags."""
        block = self.block
        x = torch.as_tensor(
            np.stack([self.ids[self.starts[i] : self.starts[i] + block + 1] for i in picked])
        )
        flags = np.stack(
            [self.flags[self.starts[i] + 1 : self.starts[i] + block + 1] for i in picked]
        )
        return x, flags


# --- training ---------------------------------------------------------------------------


def _lr(config: PretrainConfig, words_seen: int) -> float:
    progress = words_seen / config.words
    if progress < config.warmup:
        return config.lr * max(progress / config.warmup, 0.01)
    decay = (progress - config.warmup) / max(1e-9, 1 - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, decay))))


@torch.no_grad()
def perplexity(model: Any, ids: np.ndarray, block: int, max_tokens: int) -> float:
    """Token-level perplexity of ``model`` on the first ``max_tokens`` of a stream."""
    model.eval()
    ids = ids[: max_tokens + 1]
    starts = _windows(len(ids), block)
    if len(starts) == 0:
        raise ConfigError(
            f"validation stream has {len(ids)} tokens, fewer than one block of {block}"
        )
    total, count = 0.0, 0
    for chunk in np.array_split(starts, max(1, len(starts) // 32)):
        x = torch.as_tensor(np.stack([ids[s : s + block + 1] for s in chunk]))
        inputs = x[:, :-1]
        logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits
        # logits: (batch, block, vocab); the same loss as training's
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1)
        )
        total += float(loss) * len(chunk)
        count += len(chunk)
    model.train()
    return math.exp(total / count)


def checkpoint_name(words: int) -> str:
    """Folder name of the checkpoint written at ``words`` words seen."""
    return f"words-{words:012d}"


def _save_student(model: Any, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    """Write a loadable student: ``save_pretrained`` model and tokenizer, plus its metrics."""
    with weight_io():  # no "Writing model shards" bar unless progress bars are on
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "pretraining.json").write_text(json.dumps(meta, indent=2))


@dataclass
class _Trainer:
    """One run's model, optimizer and data, and how each of its steps and saves is done."""

    config: PretrainConfig
    out: Path
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    windows: _TrainingWindows
    val_ids: np.ndarray
    log: Callable[[str], object]

    def step(self, at: _Position) -> tuple[float, int, int]:
        """Train on the next batch; return its loss, words and target tokens.

        The last batch of the run is cut at the word boundary, so the run sees exactly
        ``config.words`` words.
        """
        picked = self.windows.draw(at, self.config.batch_size)
        x, flags = self.windows.tensors(picked)
        labels = x[:, 1:].clone()
        batch_words = int(self.windows.words[picked].sum())
        remaining = self.config.words - at.words_seen
        if batch_words > remaining:  # cut the last batch at the word boundary
            keep = (np.cumsum(flags.reshape(-1)) <= remaining).reshape(flags.shape)
            labels[~torch.as_tensor(keep)] = -100
            batch_words = remaining
        for group in self.optimizer.param_groups:
            group["lr"] = _lr(self.config, at.words_seen)
        inputs = x[:, :-1]
        logits = self.model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits
        # logits: (batch, block, vocab)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        at.step += 1
        at.words_seen += batch_words
        return loss.item(), batch_words, int((labels != -100).sum())

    def checkpoint(self, target: int, at: _Position, metrics: IO[str]) -> dict[str, Any]:
        """Write the ``target`` words checkpoint with its validation perplexity; return its metrics."""
        ppl = perplexity(self.model, self.val_ids, self.config.block_size, self.config.val_tokens)
        meta = {
            "words_seen": at.words_seen,
            "target_words": target,
            "step": at.step,
            "val_perplexity": ppl,
            "epochs": at.words_seen / max(1, int(self.windows.words.sum())),
        }
        write_folder_atomic(
            self.out / checkpoint_name(target),
            lambda folder: _save_student(self.model, self.tokenizer, folder, meta),
            "checkpoint",
        )
        metrics.write(json.dumps({"event": "checkpoint", **meta}) + "\n")
        metrics.flush()
        self.log(
            f"checkpoint {checkpoint_name(target)}: {at.words_seen:,} words, step {at.step}, "
            f"validation perplexity {ppl:.2f}"
        )
        return meta

    def save_state(self, at: _Position) -> None:
        """Write ``state.pt`` (model, optimizer, position, RNG) atomically, to resume from."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **asdict(at),
            "torch_rng": torch.get_rng_state(),
        }
        write_atomic_with(self.out / STATE_FILE, lambda fh: torch.save(state, fh), "state")

    def load_state(self) -> _Position:
        """Restore the model, optimizer and RNG of ``state.pt``; return its position."""
        state = torch.load(self.out / STATE_FILE, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        return _Position(state["step"], state["words_seen"], state["epoch"], state["position"])


def _open_run_folder(
    out: Path, config: PretrainConfig, train_stories: Sequence[str], resume: bool
) -> tuple[Any, bool]:
    """Start ``out`` (a new tokenizer and ``config.json``) or check a resume of it.

    Returns:
        The run's tokenizer, and whether the run resumes from ``state.pt``.

    Raises:
        ConfigError: ``out`` holds a run and ``resume`` is off, or a setting differs
            from the run's ``config.json`` (every such field is named).
    """
    from transformers import AutoTokenizer

    prepare(out)
    public = public_config(asdict(config))
    started = (out / STATE_FILE).exists()
    refuse_restart(out, started, resume)
    if started:
        check_resume(read_config(out), public, out)
        return AutoTokenizer.from_pretrained(out / TOKENIZER_DIR), True
    tokenizer = train_tokenizer(train_stories, config.model.vocab_size)
    write_folder_atomic(out / TOKENIZER_DIR, tokenizer.save_pretrained, "tokenizer")
    write_config(out, public)
    return tokenizer, False


def _make_trainer(
    config: PretrainConfig,
    out: Path,
    tokenizer: Any,
    stories: tuple[Sequence[str], Sequence[str]],
    log: Callable[[str], object],
) -> _Trainer:
    """Encode the text and build a fresh model and optimizer for it."""
    train_ids, train_flags = encode_stream(tokenizer, stories[0])
    val_ids, _ = encode_stream(tokenizer, stories[1])
    model_cfg = config.model
    if len(tokenizer) != model_cfg.vocab_size:
        model_cfg = replace(model_cfg, vocab_size=len(tokenizer))
    model = build_model(model_cfg, tokenizer.eos_token_id, config.seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    windows = _TrainingWindows(train_ids, train_flags, config.block_size, config.seed)
    return _Trainer(config, out, tokenizer, model, optimizer, windows, val_ids, log)


def pretrain(
    config: PretrainConfig,
    train_stories: Sequence[str],
    val_stories: Sequence[str],
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Train a student from scratch; return the final metrics.

    Args:
        config: The run's settings.
        train_stories: Training text, one story per item.
        val_stories: Validation text for perplexity.
        out_dir: Run folder: ``tokenizer/``, ``words-*/`` checkpoints, ``state.pt``,
            ``config.json`` and ``metrics.jsonl``.
        resume: Continue from ``out_dir/state.pt`` (the config must match).
        progress: Show a progress bar of words seen.
        log: Where one-line reports go.

    Raises:
        ConfigError: A bad setting, too little text, a run in ``out_dir`` without
            ``resume``, or a resume with other settings than the run's.
        RunFolderError: ``out_dir`` cannot be written, or its ``config.json`` is damaged.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    tokenizer, resuming = _open_run_folder(out, config, train_stories, resume)
    trainer = _make_trainer(config, out, tokenizer, (train_stories, val_stories), log)
    at = _Position(step=0, words_seen=0, epoch=0, position=0)
    if resuming:
        at = trainer.load_state()
        log(f"resumed {out} at step {at.step}, {at.words_seen:,} words seen")
    else:
        torch.manual_seed(config.seed)
    saves = sorted(set(config.save_at) | {config.words})
    saves = [w for w in saves if w > at.words_seen or not (out / checkpoint_name(w)).exists()]
    bar = tqdm(
        total=config.words,
        initial=at.words_seen,
        unit="word",
        unit_scale=True,
        disable=not progress,
    )
    started, tokens_done = time.perf_counter(), 0
    result: dict[str, Any] = {}
    try:
        with open(out / METRICS_FILE, "a", encoding="utf-8") as metrics:
            while saves:
                loss, words, tokens = trainer.step(at)
                tokens_done += tokens
                bar.update(words)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                saved_now = False
                while saves and at.words_seen >= saves[0]:
                    result = trainer.checkpoint(saves.pop(0), at, metrics)
                    saved_now = True
                if saved_now or at.step % config.state_every_steps == 0:
                    trainer.save_state(at)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    result["tokens_per_second"] = tokens_done / elapsed if elapsed > 0 else float("nan")
    result["final_dir"] = str(out / checkpoint_name(config.words))
    return result
