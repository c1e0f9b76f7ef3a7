"""Keeping secrets out of everything the project prints, logs or writes: the one redactor.

Three kinds of secret reach the project: an API key (read from an environment variable by
the teacher that needs it), credentials written into a URL
(``https://user:password@host/v1``, or a query value such as ``?api-key=...``), and a
header or body field whose name says it is one (``api_key``, ``token``, ``password``,
``Authorization``...: ``is_secret_name``). ``redact_url`` hides a URL's password and
every query value, ``redact_config`` does so for every URL inside a config and masks
every field with a secret's name, ``redact_text`` hides the credentials of every URL in
a line of text, and ``Redactor`` replaces every known form of a secret (as written,
percent-decoded, and the base64 ``user:password`` of an HTTP ``Basic`` header) inside
any text, such as a server's answer that echoes it.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

MASK = "***"

# the last word of a field or parameter name that says its value is a credential
_SECRET_WORDS = frozenset(
    [
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
        "session",
        "cookie",
        "bearer",
    ]
)
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# a URL inside text: up to the first space, quote or closing bracket
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)\]]+")


def is_secret_name(name: object) -> bool:
    """Whether a header, body field or query parameter named ``name`` holds a credential:
    its last word is one (``api_key``, ``X-Api-Key``, ``apiKey``, ``access_token``,
    ``password``, ``Authorization``), not ``max_tokens`` or ``api_key_env`` (the name of
    the variable that holds the key)."""
    if not isinstance(name, str):
        return False
    words = [w.lower() for w in _WORDS.findall(name)]
    return bool(words) and words[-1] in _SECRET_WORDS


def _split(url: str) -> Any:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """``url`` with its password and every query value replaced by ``***``.

    Any query value may be a key (``?api-key=...``, ``?sig=...``), so all are masked; the
    names stay, so a reader still sees which parameters were given.
    """
    parts = _split(url)
    if parts is None:
        return url
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
    if parts.query:
        masked = "&".join(
            f"{pair.partition('=')[0]}={MASK}" if "=" in pair else MASK
            for pair in parts.query.split("&")
            if pair
        )
        parts = parts._replace(query=masked)
    return urlunsplit(parts)


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through ``redact_url`` (for error lines)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def url_query(url: str) -> tuple[str, list[tuple[str, str]]]:
    """``url`` without its query string, and the query's ``(name, value)`` pairs."""
    parts = _split(url)
    if parts is None or not parts.query:
        return url, []
    return urlunsplit(parts._replace(query="")), parse_qsl(parts.query, keep_blank_values=True)


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
    if parts is None:
        return []
    query = [v for pair in parts.query.split("&") for v in [pair.partition("=")[2]] if v]
    query_forms = {form for v in query for form in (v, unquote(v.replace("+", " ")))}
    if not parts.password:
        return sorted((f for f in query_forms if f), key=len, reverse=True)
    user, password = parts.username or "", parts.password
    forms = {
        *query_forms,
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
    """A copy of a JSON-like config with every secret hidden: the password and query
    values of every URL string, and the value of every field whose name is a secret's
    (``is_secret_name``: ``api_key``, ``token``...), at any depth. ``None`` and empty
    values stay (they show that no secret was given)."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {
            k: MASK if is_secret_name(k) and v not in (None, "") else redact_config(v)
            for k, v in value.items()
        }
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


def body_secrets(body: Any) -> list[str]:
    """The values of every field with a secret's name inside a JSON-like body (as text),
    so that a ``Redactor`` hides them where a server's answer or an error echoes them."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for k, v in body.items():
            if is_secret_name(k) and isinstance(v, str | int | float) and not isinstance(v, bool):
                found.append(str(v))
            else:
                found.extend(body_secrets(v))
    elif isinstance(body, list | tuple):
        for v in body:
            found.extend(body_secrets(v))
    return [f for f in found if f]


def basic_auth_from_url(url: str) -> tuple[str, str] | None:
    """The ``(user, password)`` written into a URL, percent-decoded, or ``None``."""
    parts = _split(url)
    if parts is None or (parts.username is None and parts.password is None):
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record's message through ``redact_text``, for
    a library's logger that shows URLs (httpx logs each request's URL at INFO level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_text(message), None
        return True


def redact_logger(name: str) -> None:
    """Install ``RedactingFilter`` on the logger ``name`` (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
