"""What a media file says about itself: container, codecs, size, rate, length, creation time.

Only the container headers are read (PyAV/FFmpeg demuxer), nothing is decoded; the numbers are
*declared* ones, which :mod:`media.integrity` then checks against what actually decodes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from media._json import JsonReport
from media.errors import IndexMissingError, MediaError, NotMediaError
from media.exif import exif_datetime_original
from media.sniff import PHOTO_KINDS, isobmff_layout, sniff

#: FFmpeg demuxers that read single pictures
_PHOTO_FORMATS = frozenset({
    "image2", "jpeg_pipe", "png_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif", "gif_pipe",
    "jpegls_pipe", "j2k_pipe",
})
_PHOTO_CODECS = frozenset({"mjpeg", "png", "webp", "bmp", "tiff", "gif", "jpegls", "jpeg2000"})
#: Demuxers trusted even when :mod:`media.sniff` does not recognise the first bytes (raw streams,
#: junk before the first frame). Others are not: FFmpeg renders any ".txt" file as "video"
#: through its ``tty`` demuxer, and subtitles or playlists are no evidence either.
_UNSNIFFED_FORMATS = frozenset({
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "asf", "mpegts", "mpeg", "mpegvideo",
    "mp3", "aac", "h264", "hevc", "m4v", "flv", "ogg", "wav", "flac", "amr", "ac3", "eac3",
})


@dataclass(frozen=True)
class ProbeReport(JsonReport):
    """Declared properties of a media file."""

    kind: str
    """``video``, ``audio`` or ``photo``."""
    container: str
    """FFmpeg's demuxer name, e.g. ``mov,mp4,m4a,3gp,3g2,mj2`` or ``image2``."""
    content_type: str | None
    """Format recognised from the file's bytes (``mp4``, ``jpeg`` …), see :mod:`media.sniff`."""
    size_bytes: int
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    frame_rate: float | None
    frame_count: int | None
    """Frames the container declares (``None`` when it does not say, as MKV and TS often don't)."""
    duration: float | None
    """Seconds."""
    creation_time: datetime | None
    """From container metadata (``creation_time``) or a photo's EXIF; ``None`` when absent."""
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    bit_rate: int | None


def open_container(path: str | os.PathLike[str]) -> Any:
    """Open ``path`` with PyAV, turning FFmpeg's refusals into :class:`MediaError`.

    An MP4 whose header is readable but whose ``moov`` box is absent is reported as
    :class:`IndexMissingError` (cut short), anything else unreadable as :class:`NotMediaError`.
    """
    try:
        return av.open(os.fspath(path), mode="r", metadata_errors="replace")
    except FileNotFoundError as exc:
        raise MediaError(str(exc), code="file-missing") from exc
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        content = sniff(path).kind
        if content in ("mp4", "quicktime"):
            layout = isobmff_layout(path)
            if not layout.has_moov:
                raise IndexMissingError(
                    f"MP4 container without its index (boxes: {', '.join(layout.boxes)})"
                ) from exc
        # FFmpeg's message without the path: reports travel further than the storage layout should.
        detail = getattr(exc, "strerror", None) or type(exc).__name__
        raise NotMediaError(f"FFmpeg cannot read this file: {detail}") from exc


def parse_creation_time(value: str | None) -> datetime | None:
    """Parse container ``creation_time`` metadata (ISO 8601, naive means UTC)."""
    if not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Cameras without a clock write the epoch of their format; that is no creation time.
    if parsed.year < 1990:
        return None
    return parsed


def _fraction_to_float(value: Fraction | None) -> float | None:
    return float(value) if value else None


def _creation_time(container: Any) -> datetime | None:
    keys = ("creation_time", "com.apple.quicktime.creationdate", "date")
    for metadata in [container.metadata] + [s.metadata for s in container.streams]:
        for key in keys:
            found = parse_creation_time(metadata.get(key))
            if found is not None:
                return found
    return None


def probe_container(path: str | os.PathLike[str], container: Any) -> ProbeReport:
    """Build a :class:`ProbeReport` from an already open PyAV container."""
    size = os.path.getsize(path)
    content = sniff(path).kind
    if content is None and container.format.name not in _UNSNIFFED_FORMATS:
        raise NotMediaError(f"not a picture, audio or video format ({container.format.name})")
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise NotMediaError("no picture or sound stream in this file", code="no-decodable-stream")

    is_photo = video is not None and audio is None and (
        content in PHOTO_KINDS
        or container.format.name in _PHOTO_FORMATS
        or (video.codec_context.name in _PHOTO_CODECS and (video.frames or 1) <= 1
            and not container.duration)
    )
    kind = "photo" if is_photo else ("video" if video is not None else "audio")

    duration: float | None = None
    if not is_photo:
        if container.duration:
            duration = container.duration / av.time_base
        else:
            stream = video or audio
            if stream is not None and stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)

    creation = _creation_time(container)
    if creation is None and content == "jpeg":
        creation = exif_datetime_original(path)

    frame_rate = None
    frame_count = None
    if video is not None and not is_photo:
        frame_rate = _fraction_to_float(video.average_rate) or _fraction_to_float(video.guessed_rate)
        frame_count = video.frames or None
    return ProbeReport(
        kind=kind,
        container=container.format.name,
        content_type=content,
        size_bytes=size,
        video_codec=video.codec_context.name if video is not None else None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        width=(video.codec_context.width or None) if video is not None else None,
        height=(video.codec_context.height or None) if video is not None else None,
        frame_rate=frame_rate,
        frame_count=frame_count,
        duration=duration,
        creation_time=creation,
        has_audio=audio is not None,
        audio_sample_rate=(audio.codec_context.sample_rate or None) if audio is not None else None,
        audio_channels=_channels(audio),
        bit_rate=container.bit_rate or None,
    )


def _channels(audio: Any) -> int | None:
    if audio is None:
        return None
    try:
        return int(audio.codec_context.layout.nb_channels) or None
    except AttributeError:
        return None


def probe(path: str | os.PathLike[str]) -> ProbeReport:
    """Read the declared properties of the picture, audio or video at ``path``.

    Raises :class:`~media.errors.MediaError` (with a reason code) when the file cannot be read as
    media at all.
    """
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise MediaError(f"{Path(path).name} is empty", code="empty-file")
    with open_container(path) as container:
        return probe_container(path, container)
