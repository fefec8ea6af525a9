"""What a file is, judged by its bytes rather than its name.

Only headers are read (a few kilobytes, plus the top-level box headers of an MP4), so the cost does
not grow with the file.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from media._json import JsonReport

#: content kind -> the file extensions that honestly name it
EXTENSIONS: dict[str, frozenset[str]] = {
    "mp4": frozenset({"mp4", "m4v", "m4a", "mov", "3gp", "3g2", "f4v"}),
    "quicktime": frozenset({"mov", "qt", "mp4", "m4v"}),
    "heif": frozenset({"heic", "heif", "avif"}),
    "matroska": frozenset({"mkv", "webm", "mka"}),
    "avi": frozenset({"avi"}),
    "asf": frozenset({"wmv", "wma", "asf"}),
    "wav": frozenset({"wav"}),
    "mpegts": frozenset({"ts", "mts", "m2ts"}),
    "mpegps": frozenset({"mpg", "mpeg", "vob"}),
    "mp3": frozenset({"mp3"}),
    "aac": frozenset({"aac"}),
    "flac": frozenset({"flac"}),
    "ogg": frozenset({"ogg", "oga", "ogv", "opus"}),
    "amr": frozenset({"amr"}),
    "flv": frozenset({"flv"}),
    "h264": frozenset({"h264", "264"}),
    "jpeg": frozenset({"jpg", "jpeg", "jfif", "jpe"}),
    "png": frozenset({"png"}),
    "gif": frozenset({"gif"}),
    "webp": frozenset({"webp"}),
    "bmp": frozenset({"bmp"}),
    "tiff": frozenset({"tif", "tiff", "dng"}),
}

#: every extension some media kind claims; a name outside this set (".bin", no extension) says
#: nothing about the content and is never a mismatch
KNOWN_EXTENSIONS: frozenset[str] = frozenset().union(*EXTENSIONS.values())

PHOTO_KINDS = frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff", "heif"})


@dataclass(frozen=True)
class Sniff(JsonReport):
    """The content kind of a file and whether its name agrees."""

    kind: str | None
    """``mp4``, ``jpeg``, … or ``None`` when the header matches no known media format."""
    extension: str | None
    extension_matches: bool | None
    """``None`` when the extension names no media format, so there is nothing to compare."""


def _kind_from_header(head: bytes) -> str | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"heim", b"heis"):
            return "heif"
        return "quicktime" if brand == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "quicktime"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "webp", b"AVI ": "avi", b"WAVE": "wav"}.get(head[8:12])
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpegps"
    if head.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) and len(head) > 4:
        return "h264"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "mpegts"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS sync word
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"  # MPEG audio frame sync
    return None


def sniff(path: str | os.PathLike[str], *, filename: str | None = None) -> Sniff:
    """Identify ``path`` by its first bytes and compare with the extension of ``filename``.

    ``filename`` is the name the file was uploaded under (stored files may have none); it defaults
    to the path's own name.
    """
    with open(path, "rb") as stream:
        head = stream.read(512)
    kind = _kind_from_header(head)
    name = filename if filename is not None else Path(path).name
    suffix = Path(name).suffix.lower().lstrip(".") or None
    if suffix is None or suffix not in KNOWN_EXTENSIONS:
        matches = None
    else:
        matches = kind is not None and suffix in EXTENSIONS.get(kind, frozenset())
    return Sniff(kind=kind, extension=suffix, extension_matches=matches)


@dataclass(frozen=True)
class BoxLayout(JsonReport):
    """Top-level boxes of an ISO base media (MP4/MOV) file, read from their headers only."""

    boxes: tuple[str, ...]
    has_moov: bool
    has_mdat: bool
    moov_before_mdat: bool | None
    truncated_box: str | None
    """The type of a box whose declared size runs past the end of the file, if any."""
    missing_bytes: int


def isobmff_layout(path: str | os.PathLike[str], *, max_boxes: int = 10_000) -> BoxLayout:
    """Walk the top-level boxes of an MP4/MOV file by seeking from header to header."""
    size = os.path.getsize(path)
    boxes: list[str] = []
    truncated: str | None = None
    missing = 0
    offset = 0
    with open(path, "rb") as stream:
        while offset + 8 <= size and len(boxes) < max_boxes:
            stream.seek(offset)
            header = stream.read(16)
            box_size, raw_type = struct.unpack(">I4s", header[:8])
            box_type = raw_type.decode("latin-1")
            if box_size == 1 and len(header) >= 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # the box runs to the end of the file
                box_size = size - offset
            boxes.append(box_type)
            if box_size < 8:
                truncated = box_type
                break
            if offset + box_size > size:
                truncated = box_type
                missing = offset + box_size - size
                break
            offset += box_size
    moov = "moov" in boxes
    mdat = "mdat" in boxes
    order = boxes.index("moov") < boxes.index("mdat") if moov and mdat else None
    return BoxLayout(
        boxes=tuple(boxes), has_moov=moov, has_mdat=mdat, moov_before_mdat=order,
        truncated_box=truncated, missing_bytes=missing,
    )
