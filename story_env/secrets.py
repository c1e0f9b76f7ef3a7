"""Keeping secrets out of everything the project prints, logs or writes.

Two kinds of secret reach the project: an API key (read from an environment variable by
the teacher that needs it) and credentials written into a URL
(``https://user:password@host/v1``). ``redact_url`` hides a URL's password,
``redact_config`` does so for every URL inside a config, and ``Redactor`` replaces every
known form of a secret (as written, percent-decoded, and the base64 ``user:password`` of
an HTTP ``Basic`` header) inside any text, such as a server's answer that echoes it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def _split(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; other URLs unchanged."""
    parts = _split(url)
    if parts is None or not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def strip_url_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part."""
    parts = _split(url)
    if parts is None or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def url_secrets(url: str) -> list[str]:
    """Every form in which a URL's password may show up in text.

    The password as written and percent-decoded, ``user:password`` in both forms, and
    the base64 token of the HTTP ``Basic`` header a client sends for them.
    """
    parts = _split(url)
    if parts is None or not parts.password:
        return []
    user, password = parts.username or "", parts.password
    forms = {
        password,
        unquote(password),
        f"{user}:{password}",
        f"{unquote(user)}:{unquote(password)}",
    }
    for pair in (f"{user}:{password}", f"{unquote(user)}:{unquote(password)}"):
        for encoding in ("utf-8", "latin-1"):
            try:
                forms.add(base64.b64encode(pair.encode(encoding)).decode("ascii"))
            except UnicodeEncodeError:
                continue
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_config(value: Any) -> Any:
    """A copy of a JSON-like config with the password of every URL string in it hidden."""
    if isinstance(value, str):
        return redact_url(value) if "@" in value and "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact_config(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_config(v) for v in value)
    return value


class Redactor:
    """Replaces known secrets inside text with ``***``.

    Args:
        secrets: The secret strings (empty ones are ignored); longer ones are replaced
            first, so a secret that contains another is hidden whole.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def with_secret(self, secret: str | None) -> Redactor:
        """A redactor that also hides ``secret`` (e.g. a key read just now)."""
        return Redactor([*self._secrets, secret or ""])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:  # never show the secrets themselves
        return f"Redactor({len(self._secrets)} secrets)"


def basic_auth_from_url(url: str) -> tuple[str, str] | None:
    """The ``(user, password)`` written into a URL, percent-decoded, or ``None``."""
    parts = _split(url)
    if parts is None or (parts.username is None and parts.password is None):
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")
