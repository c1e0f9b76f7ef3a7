"""Next-word-prediction pretraining of a small GPT-style student, by words seen.

The budget is counted as the paper counts it: words of training text the model has
been trained to predict, epochs repeating (``--words 2000000`` on a 1M-word corpus is
two epochs). The run stops after exactly that many words (the last batch is cut at the
word boundary), writes ``save_pretrained`` checkpoints at the requested word counts,
reports validation perplexity, and resumes from its last state after an interruption.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from story_env.errors import ConfigError
from story_env.loading import weight_io

EOS = "<|endoftext|>"
STATE_FILE = "state.pt"


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
    lr: float = 2e-3
    warmup: float = 0.02
    weight_decay: float = 0.1
    seed: int = 0
    state_every_steps: int = 50
    val_tokens: int = 32_768
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
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
        vocab_size=config.vocab_size,
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(hf_config)


# --- training ---------------------------------------------------------------------------


def _windows(n_tokens: int, block: int) -> np.ndarray:
    """Start offsets of the (block + 1)-token training windows that tile the stream."""
    return np.arange(0, n_tokens - block - 1, block, dtype=np.int64)


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


def _atomic_save_dir(model: Any, tokenizer: Any, dest: Path, meta: dict[str, Any]) -> None:
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    with weight_io():  # no "Writing model shards" bar unless progress bars are on
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "pretraining.json").write_text(json.dumps(meta, indent=2))
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def checkpoint_name(words: int) -> str:
    """Folder name of the checkpoint written at ``words`` words seen."""
    return f"words-{words:012d}"


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
    """
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(asdict(config), sort_keys=True)
    state_path = out / STATE_FILE
    if resume and state_path.exists():
        saved = json.loads((out / "config.json").read_text())
        if json.dumps(saved, sort_keys=True) != config_json:
            raise ConfigError(
                f"cannot resume {out}: it was started with a different config ({saved}); "
                "use the same flags or a new --out folder"
            )
        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    else:
        if state_path.exists() and not resume:
            raise ConfigError(
                f"{out} already holds a run; pass --resume to continue it or pick a new --out"
            )
        tokenizer = train_tokenizer(train_stories, config.model.vocab_size)
        tokenizer.save_pretrained(out / "tokenizer")
        (out / "config.json").write_text(config_json)

    train_ids, train_flags = encode_stream(tokenizer, train_stories)
    val_ids, _ = encode_stream(tokenizer, val_stories)
    block, batch = config.block_size, config.batch_size
    model_cfg = config.model
    if len(tokenizer) != model_cfg.vocab_size:
        model_cfg = ModelConfig(**{**asdict(model_cfg), "vocab_size": len(tokenizer)})
    model = build_model(model_cfg, tokenizer.eos_token_id, config.seed)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    starts = _windows(len(train_ids), block)
    if len(starts) == 0:
        raise ConfigError(
            f"the training text has {len(train_ids)} tokens, fewer than one block of {block}"
        )
    # words predicted in each window (targets are tokens 1..block of the window)
    flag_cumsum = np.concatenate([[0], np.cumsum(train_flags)])
    window_words = flag_cumsum[starts + block + 1] - flag_cumsum[starts + 1]

    step, words_seen, epoch, position = 0, 0, 0, 0
    saves = sorted(set(config.save_at) | {config.words})
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, words_seen, epoch, position = (
            state["step"],
            state["words_seen"],
            state["epoch"],
            state["position"],
        )
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed {out} at step {step}, {words_seen:,} words seen")
    else:
        torch.manual_seed(config.seed)
    saves = [w for w in saves if w > words_seen or not (out / checkpoint_name(w)).exists()]

    def order(ep: int) -> np.ndarray:
        return np.random.default_rng([config.seed, ep]).permutation(len(starts))

    perm = order(epoch)
    bar = tqdm(
        total=config.words, initial=words_seen, unit="word", unit_scale=True, disable=not progress
    )
    metrics_file = open(out / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    started, tokens_done = time.perf_counter(), 0
    result: dict[str, Any] = {}
    try:
        while saves:
            picked: list[int] = []
            while len(picked) < batch:
                if position == len(perm):
                    epoch, position = epoch + 1, 0
                    perm = order(epoch)
                picked.append(int(perm[position]))
                position += 1
            x = torch.as_tensor(
                np.stack([train_ids[starts[i] : starts[i] + block + 1] for i in picked])
            )
            flags = np.stack([train_flags[starts[i] + 1 : starts[i] + block + 1] for i in picked])
            labels = x[:, 1:].clone()
            batch_words = int(window_words[picked].sum())
            remaining = config.words - words_seen
            if batch_words > remaining:  # cut the last batch at the word boundary
                keep = (np.cumsum(flags.reshape(-1)) <= remaining).reshape(flags.shape)
                labels[~torch.as_tensor(keep)] = -100
                batch_words = remaining
            for group in optimizer.param_groups:
                group["lr"] = _lr(config, words_seen)
            inputs = x[:, :-1]
            logits = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits
            # logits: (batch, block, vocab)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            words_seen += batch_words
            tokens_done += int((labels != -100).sum())
            bar.update(batch_words)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            saved_now = False
            while saves and words_seen >= saves[0]:
                target = saves.pop(0)
                ppl = perplexity(model, val_ids, block, config.val_tokens)
                meta = {
                    "words_seen": words_seen,
                    "target_words": target,
                    "step": step,
                    "val_perplexity": ppl,
                    "epochs": words_seen / max(1, int(window_words.sum())),
                }
                _atomic_save_dir(model, tokenizer, out / checkpoint_name(target), meta)
                metrics_file.write(json.dumps({"event": "checkpoint", **meta}) + "\n")
                metrics_file.flush()
                log(
                    f"checkpoint {checkpoint_name(target)}: {words_seen:,} words, step {step}, "
                    f"validation perplexity {ppl:.2f}"
                )
                result = meta
                saved_now = True
            if saved_now or step % config.state_every_steps == 0:
                _atomic_torch_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "words_seen": words_seen,
                        "epoch": epoch,
                        "position": position,
                        "torch_rng": torch.get_rng_state(),
                    },
                    state_path,
                )
    finally:
        bar.close()
        metrics_file.close()
    elapsed = time.perf_counter() - started
    result["tokens_per_second"] = tokens_done / elapsed if elapsed > 0 else float("nan")
    result["final_dir"] = str(out / checkpoint_name(config.words))
    return result
