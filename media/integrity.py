"""Is the file whole? Decode everything and compare with what the container declares.

Three kinds of damage are told apart:

* **not media** – no demuxer accepts the bytes, whatever the file is called;
* **truncated** – the file ends before its content does: an MP4 without its index (``moov``), a
  box that runs past the end of the file, fewer packets than the declared frame count, a decoded
  length short of the declared duration, a photo without its end marker;
* **damaged** – the container is complete but bytes inside it are wrong. Only a decoder can see
  that, and OpenCV's reader conceals it, so PyAV decodes with FFmpeg's error detection switched to
  *explode*: each damaged packet raises instead of being patched over, and frames the decoder still
  had to conceal carry the *corrupt* flag. Both are counted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from media._json import JsonReport
from media._scan import ScanStats, scan
from media.errors import MediaError
from media.probe import ProbeReport, open_container, probe_container
from media.reasons import Reason, reason
from media.sniff import BoxLayout, isobmff_layout, sniff


@dataclass(frozen=True)
class IntegrityReport(JsonReport):
    """The outcome of decoding a whole file."""

    ok: bool
    problems: tuple[Reason, ...]
    kind: str | None
    declared_frames: int | None
    demuxed_packets: int
    decoded_frames: int
    decode_errors: int
    """Video packets the decoder rejected as damaged."""
    corrupt_frames: int
    """Frames the decoder output but flagged as concealed or incomplete."""
    audio_decode_errors: int
    declared_duration: float | None
    decoded_duration: float | None
    error_times: tuple[float, ...]
    """Stream positions (seconds) of the first decode errors."""
    layout: BoxLayout | None
    """Top-level box layout for MP4/MOV files."""


def _frame_tolerance(declared: int) -> int:
    return max(1, round(declared * 0.002))


def _duration_tolerance(declared: float) -> float:
    return max(1.0, declared * 0.02)


def _photo_is_cut(path: str | os.PathLike[str], content: str | None) -> bool:
    """A JPEG ends with the EOI marker and a PNG with its IEND chunk; cut files lack them."""
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        stream.seek(max(0, size - 65536))
        tail = stream.read()
    if content == "jpeg":
        # Some cameras append trailers after EOI, so look for it near the end, not at the end.
        return b"\xff\xd9" not in tail
    if content == "png":
        return b"IEND" not in tail[-64:]
    return False


def assess(
    path: str | os.PathLike[str],
    probed: ProbeReport,
    stats: ScanStats,
    layout: BoxLayout | None,
) -> IntegrityReport:
    """Judge a decode pass against the declared properties (the rules of this module's docstring)."""
    problems: list[Reason] = []
    truncated: dict[str, object] = {}
    decoded_any = stats.video_frames > 0 if probed.kind != "audio" else stats.audio_frames > 0
    if probed.content_type is None and not decoded_any:
        # FFmpeg picks some demuxers by the file name alone (".jpg" → image2), so a file whose
        # bytes match no media format and of which nothing decodes is not media, not "damaged".
        problems.append(reason("not-media", decode_errors=stats.video_decode_errors
                               + stats.audio_decode_errors))
        return _report(probed, stats, layout, problems)

    if layout is not None and layout.truncated_box is not None:
        truncated.update(box=layout.truncated_box, missing_bytes=layout.missing_bytes)
    declared_frames = probed.frame_count if probed.kind == "video" else None
    if declared_frames is not None and (
        stats.video_packets < declared_frames - _frame_tolerance(declared_frames)
    ):
        truncated.update(declared_frames=declared_frames, packets=stats.video_packets)
    decoded_duration = stats.video_end if probed.kind == "video" else stats.audio_end
    if probed.kind in ("video", "audio") and probed.duration and declared_frames is None:
        reached = max(stats.last_video_packet_end or 0.0, decoded_duration or 0.0)
        if reached < probed.duration - _duration_tolerance(probed.duration):
            truncated.update(declared_duration=round(probed.duration, 3), reached=round(reached, 3))
    if probed.kind == "photo" and _photo_is_cut(path, probed.content_type):
        truncated.update(end_marker="missing")
    if stats.demux_error is not None and truncated:
        truncated["demux_error"] = stats.demux_error
    if truncated:
        problems.append(reason("truncated", **truncated))

    video_errors, audio_errors = stats.video_decode_errors, stats.audio_decode_errors
    if truncated and probed.kind != "photo":
        # The last packet of a cut-off file is a half packet; its error is the truncation itself.
        video_errors -= stats.video_errors_at_end
        audio_errors -= stats.audio_errors_at_end
    damaged = video_errors > 0 or audio_errors > 0 or (stats.demux_error is not None and not truncated)
    if damaged and not (probed.kind == "photo" and truncated):
        details: dict[str, object] = {
            "video_errors": video_errors,
            "audio_errors": audio_errors,
            "first_error_times": stats.error_times[:5],
        }
        if stats.demux_error and not truncated:
            details["demux_error"] = stats.demux_error
        problems.append(reason("decode-errors", **details))
    if stats.corrupt_frames > 0:
        problems.append(reason("corrupt-frames", frames=stats.corrupt_frames))
    if probed.kind in ("video", "photo") and stats.video_frames == 0 and not problems:
        problems.append(reason("no-decodable-stream"))
    if probed.kind == "audio" and stats.audio_frames == 0 and not problems:
        problems.append(reason("no-decodable-stream"))

    return _report(probed, stats, layout, problems)


def _report(
    probed: ProbeReport, stats: ScanStats, layout: BoxLayout | None, problems: list[Reason]
) -> IntegrityReport:
    declared_frames = probed.frame_count if probed.kind == "video" else None
    decoded_duration = stats.video_end if probed.kind == "video" else stats.audio_end
    return IntegrityReport(
        ok=not problems,
        problems=tuple(problems),
        kind=probed.kind,
        declared_frames=declared_frames,
        demuxed_packets=stats.video_packets if probed.kind != "audio" else stats.audio_packets,
        decoded_frames=stats.video_frames if probed.kind != "audio" else stats.audio_frames,
        decode_errors=stats.video_decode_errors,
        corrupt_frames=stats.corrupt_frames,
        audio_decode_errors=stats.audio_decode_errors,
        declared_duration=probed.duration,
        decoded_duration=round(decoded_duration, 3) if decoded_duration is not None else None,
        error_times=tuple(stats.error_times),
        layout=layout,
    )


def unreadable(error: MediaError, layout: BoxLayout | None = None) -> IntegrityReport:
    """The report for a file that could not even be opened as media."""
    details: dict[str, object] = {"error": str(error)}
    if layout is not None:
        details["boxes"] = list(layout.boxes)
    return IntegrityReport(
        ok=False, problems=(reason(error.code, **details),), kind=None, declared_frames=None,
        demuxed_packets=0, decoded_frames=0, decode_errors=0, corrupt_frames=0,
        audio_decode_errors=0, declared_duration=None, decoded_duration=None, error_times=(),
        layout=layout,
    )


def container_layout(path: str | os.PathLike[str]) -> BoxLayout | None:
    """The MP4/MOV box layout of ``path``, or ``None`` for other formats."""
    if sniff(path).kind in ("mp4", "quicktime", "heif"):
        return isobmff_layout(path)
    return None


def check_integrity(path: str | os.PathLike[str]) -> IntegrityReport:
    """Decode all of ``path`` and report whether it is whole, truncated, damaged or not media.

    Never raises for bad content: a file that is not media yields a report with ``ok=False``.
    Memory use does not depend on the file's length.
    """
    if not os.path.isfile(path):
        return unreadable(MediaError(f"no such file: {path}", code="file-missing"))
    if os.path.getsize(path) == 0:
        return unreadable(MediaError("the file is empty", code="empty-file"))
    layout = container_layout(path)
    try:
        with open_container(path) as container:
            probed = probe_container(path, container)
            stats = scan(container, strict=True)
    except MediaError as error:
        return unreadable(error, layout)
    return assess(path, probed, stats, layout)
