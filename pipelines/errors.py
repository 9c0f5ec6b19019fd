"""Typed errors of the ingestion side. Each names the document and says what is wrong in one sentence."""

from __future__ import annotations

from indexers.errors import OndataError


class SourceError(OndataError):
    """A document source could not be listed or an item could not be read."""


class ParseError(OndataError):
    """A document could not be turned into text."""


class UnsupportedFormatError(ParseError):
    """No parser handles this file type."""


class EncryptedDocumentError(ParseError):
    """The document is password-protected."""


class CorruptDocumentError(ParseError):
    """The file is damaged or not what its name says."""


class EmptyDocumentError(ParseError):
    """The document holds no extractable text (e.g. a scanned PDF without OCR)."""


class DocumentTooLargeError(ParseError):
    """The document exceeds the configured size limit."""


class InvalidMetadataError(SourceError):
    """A document's metadata (its sidecar, or its blob metadata) is invalid, e.g. ``groups`` is not a list."""


class SymlinkError(SourceError):
    """A symbolic link that is not followed: links are off, or it points outside the root, or it loops."""


class SpecialFileError(SourceError):
    """A device, FIFO, socket or virtual-filesystem file (/proc, /sys, /dev): never opened for reading."""


class CleanupRefused(OndataError):
    """``--cleanup full`` would delete documents of other scopes and was not confirmed (``--yes``)."""
