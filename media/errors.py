"""Exceptions raised by the analysis functions when a file cannot be analysed at all."""
from __future__ import annotations


class MediaError(Exception):
    """A file could not be analysed; ``code`` is one of :data:`media.reasons.CATALOGUE`."""

    code = "not-media"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotMediaError(MediaError):
    """The bytes are not a picture, audio or video that the decoders know."""

    code = "not-media"


class IndexMissingError(MediaError):
    """An MP4/MOV container without its index (``moov``): typically cut short while recording."""

    code = "index-missing"
