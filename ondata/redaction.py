"""Secrets never reach a log line, a traceback or an error message (DESIGN.md 10).

``redact(text)`` replaces the values of every secret-shaped thing in ``text`` with ``REDACTED``:
URL query parameters (``sig=``, ``key=``, ``api-key=``, ``code=``, ``access_token=``...),
connection-string parts (``AccountKey=``, ``SharedAccessSignature=``, ``SharedAccessKey=``,
``Password=``), headers (``api-key: ...``, ``Authorization: ...`` also as a dict repr), bearer
tokens and JWTs, and every literal secret registered with ``register_secret`` (the configured keys,
connection strings and tokens, so that even a secret in an unexpected shape is caught).

``install(level=...)`` is the logging set-up of every entry point (``ondata`` CLI, ``ondata serve``):
it configures the root handler, and redacts each record where it is made (a log record factory),
so that the output of every logger passes it whatever handlers it has (urllib3's URL lines and
azure-core's request logs at ``--debug``, uvicorn, Prefect's own handlers and its API log handler),
and again in a filter on the root handlers. Warnings go through logging, and uncaught exceptions
are printed through ``redact`` too.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from typing import Any, Iterable

REDACTED = "REDACTED"

# Connection-string parts: the value runs to the next ';' (a SAS inside one holds '&' and '=').
_CONNECTION_PARTS = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd|ClientSecret)=([^;\s\"'<>]+)")
# URL query parameters and key=value pairs; the value runs to the next '&', ';', space or quote.
_PARAMS = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])(sig|signature|key|api[-_]?key|subscription[-_]key|access[-_]?token|id[-_]token|"
    r"refresh[-_]token|token|client[-_]secret|secret|password|skoid)=([^&;\s\"'<>,)]+)")
# Headers, also as they appear in a dict repr: "'api-key': 'abc'", "Authorization: Bearer abc".
_HEADERS = re.compile(
    r"(?i)([\"']?\b(?:api-key|x-api-key|authorization|proxy-authorization|ocp-apim-subscription-key|"
    r"x-ms-copy-source-authorization|cookie|set-cookie)[\"']?\s*[:=]\s*[\"']?)"
    r"((?:bearer|basic|sharedkey|sharedaccesssignature)\s+)?([^\s\"',}]+)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9\-._~+/]+=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
MIN_SECRET_CHARS = 6


def register_secret(*values: str | None) -> None:
    """Redact these literal values wherever they appear (values shorter than ``MIN_SECRET_CHARS`` are ignored)."""
    global _secrets
    with _lock:
        found = set(_secrets)
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_SECRET_CHARS:
                found.add(value)
        _secrets = tuple(sorted(found, key=len, reverse=True))


def registered_secrets() -> tuple[str, ...]:
    return _secrets


def redact(text: str) -> str:
    """``text`` with every secret-shaped value replaced by ``REDACTED`` (see the module docstring)."""
    if not text:
        return text
    for value in _secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _CONNECTION_PARTS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _HEADERS.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


_PLAIN = (int, float, bool, type(None))


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN) or isinstance(value, bytes):
        return value
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - an object that cannot print itself cannot leak through %s either
        return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact a record's message, arguments, exception and stack text in place (idempotent)."""
    if getattr(record, "_ondata_redacted", False):
        return record
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string: logging reports it when the record is emitted
        message = None
    if message is not None:
        cleaned = redact(message)
        if cleaned != message:  # a secret in the template, or made by joining template and arguments
            record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._ondata_redacted = True
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record it sees and lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False


def _install_record_factory() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True


def _excepthook(kind, value, tb) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def install(*, level: int = logging.WARNING, secrets: Iterable[str | None] = (),
            fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Set up logging for an entry point with redaction everywhere (see the module docstring)."""
    register_secret(*secrets)
    _install_record_factory()
    logging.basicConfig(level=level, format=fmt)
    logging.getLogger().setLevel(level)
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    sys.excepthook = _excepthook
