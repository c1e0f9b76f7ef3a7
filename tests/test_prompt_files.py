"""Prompt and config files (issue 34): a file that is not a regular file (a FIFO) is
refused instead of hanging, a UTF-8 byte-order mark is removed, NUL bytes are refused."""

from __future__ import annotations

import os

import pytest

from story_env.errors import ConfigError
from story_env.prompts import load_prompts
from story_env.run.cli import main


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "prompts.fifo"
    os.mkfifo(path)
    return path


def test_a_fifo_as_prompt_file_is_refused_not_read(fifo):
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_prompts(None, str(fifo))


def test_a_fifo_as_config_file_is_one_line(fifo, capsys, tmp_path):
    argv = ["train", "--config", str(fifo), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"config file {str(fifo)!r} is not a regular file" in err


def test_a_byte_order_mark_is_removed(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes("\ufeffOnce upon a time,\nA dragon\n".encode())
    assert load_prompts(None, str(path)) == ("Once upon a time,", "A dragon")


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_bytes('\ufeff{"steps": 100}'.encode())
    assert (
        main(["train", "--config", str(config), "--student", "ngram", "--out", str(tmp_path / "r")])
        == 2
    )
    assert "student 'ngram' cannot be trained" in capsys.readouterr().err  # the file was read


@pytest.mark.parametrize(
    ("content", "shown"),
    [(b"Once upon\na ti\x00me\n", "holds a NUL byte at line 2"), (b"\x00", "at line 1")],
)
def test_nul_bytes_in_a_prompt_file_are_refused(tmp_path, content, shown):
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=shown):
        load_prompts(None, str(path))


def test_nul_bytes_in_inline_prompts_are_refused():
    with pytest.raises(ConfigError, match="prompt 1 of prompts holds a NUL byte at position 2"):
        load_prompts(["fine", "no\x00pe"], None)
