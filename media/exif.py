"""The capture time a JPEG photo carries in its EXIF block.

A few dozen lines instead of an imaging library: only the JPEG APP1 segment is read (at most
64 KiB), and only the date tags are looked at.
"""
from __future__ import annotations

import os
import struct
from datetime import datetime, timedelta, timezone

_DATETIME = 0x0132
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011


def _read_app1(path: str | os.PathLike[str]) -> bytes | None:
    with open(path, "rb") as stream:
        if stream.read(2) != b"\xff\xd8":
            return None
        for _ in range(64):  # markers before the picture data; EXIF comes first in practice
            marker = stream.read(2)
            if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):
                return None
            length_bytes = stream.read(2)
            if len(length_bytes) < 2:
                return None
            length = struct.unpack(">H", length_bytes)[0] - 2
            if length < 0:
                return None
            if marker[1] == 0xE1:
                payload = stream.read(length)
                if payload.startswith(b"Exif\x00\x00"):
                    return payload[6:]
            else:
                stream.seek(length, os.SEEK_CUR)
    return None


def _ifd_entries(tiff: bytes, offset: int, endian: str) -> dict[int, bytes | int]:
    entries: dict[int, bytes | int] = {}
    if offset + 2 > len(tiff):
        return entries
    (count,) = struct.unpack(endian + "H", tiff[offset:offset + 2])
    for index in range(min(count, 512)):
        start = offset + 2 + 12 * index
        if start + 12 > len(tiff):
            break
        tag, kind, number, value = struct.unpack(endian + "HHI4s", tiff[start:start + 12])
        if kind == 2:  # ASCII
            if number <= 4:
                data = value[:number]
            else:
                (pointer,) = struct.unpack(endian + "I", value)
                data = tiff[pointer:pointer + number]
            entries[tag] = data.split(b"\x00", 1)[0]
        elif kind == 4:  # LONG
            entries[tag] = struct.unpack(endian + "I", value)[0]
    return entries


def _parse(value: bytes | int | None, offset: bytes | int | None) -> datetime | None:
    if not isinstance(value, bytes):
        return None
    try:
        parsed = datetime.strptime(value.decode("ascii").strip(), "%Y:%m:%d %H:%M:%S")
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(offset, bytes):
        text = offset.decode("ascii", "replace").strip()
        try:
            sign = -1 if text.startswith("-") else 1
            hours, minutes = text.lstrip("+-").split(":")
            parsed = parsed.replace(
                tzinfo=timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
            )
        except ValueError:
            pass
    return parsed


def exif_datetime_original(path: str | os.PathLike[str]) -> datetime | None:
    """``DateTimeOriginal`` (else ``DateTime``) of a JPEG, or ``None``.

    EXIF stores the camera's local clock; the result is timezone-aware only when the photo also
    carries ``OffsetTimeOriginal``.
    """
    try:
        tiff = _read_app1(path)
    except OSError:
        return None
    if not tiff or len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    endian = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack(endian + "I", tiff[4:8])
    main = _ifd_entries(tiff, ifd0, endian)
    exif_pointer = main.get(_EXIF_IFD)
    exif = _ifd_entries(tiff, exif_pointer, endian) if isinstance(exif_pointer, int) else {}
    return (
        _parse(exif.get(_DATETIME_ORIGINAL), exif.get(_OFFSET_TIME_ORIGINAL))
        or _parse(main.get(_DATETIME), None)
    )
