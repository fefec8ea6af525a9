"""One pass over a file's packets that serves every analysis at once.

Decoding is the expensive part of verification, so it happens once: every video frame is decoded
(the integrity check needs that), and the few frames that the detectors sample are handed to them
on the way, converted to small grayscale images only when someone asked for them. Memory stays flat:
frames are dropped as soon as they have been looked at.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt

#: Ask decoders to check what they can and to fail on damage instead of concealing it.
STRICT_DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer+explode"}

GrayImage = npt.NDArray[np.uint8]


def fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled down (never up) so that the longer side is at most ``max_side``."""
    longest = max(width, height)
    if not max_side or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(2, round(width * scale)), max(2, round(height * scale))


#: pixel formats whose first plane is the 8-bit luma, i.e. already a grayscale picture
_LUMA_FIRST = frozenset({
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p",
    "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray", "yuva420p",
})


class SampledFrame:
    """A decoded frame offered to detectors, with cached downscaled grayscale versions."""

    def __init__(self, frame: Any, time_s: float) -> None:
        self.time = time_s
        self.width: int = frame.width
        self.height: int = frame.height
        self._frame = frame
        self._gray: dict[tuple[int, int], GrayImage] = {}

    def _full_gray(self) -> GrayImage:
        if (self.width, self.height) not in self._gray:
            frame = self._frame
            plane = frame.planes[0]
            if frame.format.name in _LUMA_FIRST and plane.line_size >= self.width:
                # The luma plane is the grayscale picture: view it in place, no conversion.
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                image = rows[: self.height, : self.width]
            else:
                image = frame.reformat(format="gray").to_ndarray()
            self._gray[(self.width, self.height)] = image
        return self._gray[(self.width, self.height)]

    def gray(self, max_side: int | None = None) -> GrayImage:
        """The frame as 8-bit grayscale, downscaled so that its longer side is ≤ ``max_side``.

        Video luma keeps its limited range (black ≈ 16, white ≈ 235); detectors allow for it.
        """
        size = fit_within(self.width, self.height, max_side)
        if size == (self.width, self.height):
            return self._full_gray()
        if size not in self._gray:
            self._gray[size] = np.asarray(
                cv2.resize(self._full_gray(), size, interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
        return self._gray[size]

    def release(self) -> None:
        """Drop the decoded frame and the conversions (keeps memory flat)."""
        self._gray.clear()
        self._frame = None


class FrameObserver(Protocol):
    """A detector fed with sampled frames during the pass."""

    name: str

    def due(self, time_s: float) -> bool:
        """Whether the frame shown at ``time_s`` should be sampled."""

    def observe(self, frame: SampledFrame) -> None:
        """Look at one sampled frame."""

    @property
    def exhausted(self) -> bool:
        """True once the observer will take no more frames (its sample budget is spent)."""


@dataclass
class ScanStats:
    """What the pass saw, before any judgement."""

    video_packets: int = 0
    video_frames: int = 0
    video_decode_errors: int = 0
    corrupt_frames: int = 0
    audio_packets: int = 0
    audio_frames: int = 0
    audio_decode_errors: int = 0
    demux_error: str | None = None
    video_end: float | None = None
    """Seconds from the stream's start to the end of the last decoded video frame."""
    audio_end: float | None = None
    last_video_packet_end: float | None = None
    """Where the last demuxed video packet ends: short of the declared length means truncation."""
    error_times: list[float] = field(default_factory=list)
    """Positions (seconds) of the first decode errors, for the report."""
    video_errors_at_end: int = 0
    """Decode errors raised by the final two video packets (a cut-off file's half packet)."""
    audio_errors_at_end: int = 0
    observer_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


_MAX_ERROR_TIMES = 20


class _ObserverThread:
    """Runs the detectors beside the decoder, so that decoding does not wait for them.

    OpenCV releases the GIL, so QR detection on one sampled frame overlaps with decoding the next
    ones. The queue is short: at most a few sampled frames are held at any time.
    """

    def __init__(self, observers: Sequence[FrameObserver], stats: ScanStats) -> None:
        self._queue: queue.Queue[tuple[SampledFrame, list[FrameObserver]] | None] = queue.Queue(4)
        self._stats = stats
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="media-detectors", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            sampled, due = item
            if self._error is not None:
                continue
            try:
                for observer in due:
                    begun = time.perf_counter()
                    observer.observe(sampled)
                    self._stats.observer_seconds[observer.name] += time.perf_counter() - begun
            except BaseException as exc:  # noqa: BLE001 - any failure, even KeyboardInterrupt, is re-raised in the scanning thread
                self._error = exc
            finally:
                sampled.release()

    def submit(self, sampled: SampledFrame, due: list[FrameObserver]) -> None:
        self._queue.put((sampled, due))

    def close(self) -> None:
        """Wait for the detectors to finish; re-raise what they raised."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _stream_seconds(value: int | None, stream: Any) -> float | None:
    if value is None or stream.time_base is None:
        return None
    start = stream.start_time or 0
    return float((value - start) * stream.time_base)


def scan(
    container: Any,
    observers: Sequence[FrameObserver] = (),
    *,
    strict: bool = True,
    decode_audio: bool = True,
    threads: bool = True,
) -> ScanStats:
    """Demux and decode ``container`` once, feeding sampled video frames to ``observers``.

    ``strict`` makes decoders report damage (``err_detect`` with ``explode``) rather than conceal
    it; every damaged packet then counts as a decode error. Without it (detectors only), the pass
    stops as soon as every observer has spent its sample budget.
    """
    started = time.perf_counter()
    stats = ScanStats(observer_seconds={o.name: 0.0 for o in observers})
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if (decode_audio and container.streams.audio) else None
    for stream in (video, audio):
        if stream is None:
            continue
        if strict:
            stream.codec_context.options = dict(STRICT_DECODER_OPTIONS)
    if threads and video is not None:
        video.thread_type = "AUTO"  # FFmpeg's frame threads: decoding uses every core
    wanted = [s for s in (video, audio) if s is not None]
    if not wanted:
        return stats

    recent_errors: dict[bool, list[bool]] = {True: [], False: []}  # is_video -> last packets
    worker = _ObserverThread(observers, stats) if observers else None
    try:
        for packet in container.demux(wanted):
            is_video = packet.stream is video
            if packet.size:
                if is_video:
                    stats.video_packets += 1
                    if packet.pts is not None:
                        end = packet.pts + (packet.duration or 0)
                        stats.last_video_packet_end = _stream_seconds(end, video)
                else:
                    stats.audio_packets += 1
            try:
                frames = packet.decode()
                failed = False
            except av.error.EOFError:
                frames, failed = [], False
            except (av.error.FFmpegError, ValueError):
                frames, failed = [], True
                if is_video:
                    stats.video_decode_errors += 1
                else:
                    stats.audio_decode_errors += 1
                if len(stats.error_times) < _MAX_ERROR_TIMES:
                    position = _stream_seconds(packet.pts, packet.stream)
                    stats.error_times.append(round(position, 3) if position is not None else -1.0)
            if packet.size:
                recent_errors[is_video] = (recent_errors[is_video] + [failed])[-2:]
            if is_video:
                _take_video_frames(frames, video, observers, stats, worker)
            else:
                for frame in frames:
                    stats.audio_frames += 1
                    if frame.pts is not None:
                        end = _stream_seconds(frame.pts, audio)
                        if end is not None and frame.sample_rate:
                            stats.audio_end = end + frame.samples / frame.sample_rate
            if not strict and observers and all(o.exhausted for o in observers):
                break
    except av.error.EOFError:
        pass
    except (av.error.FFmpegError, OSError) as exc:
        # The demuxer gave up reading: the container is damaged or cut short. Keep the frames the
        # decoder still holds, so the counts say how far the file really goes.
        stats.demux_error = getattr(exc, "strerror", None) or type(exc).__name__
        if video is not None:
            try:
                _take_video_frames(video.codec_context.decode(None), video, observers, stats, worker)
            except (av.error.FFmpegError, ValueError):
                pass
    finally:
        if worker is not None:
            worker.close()
    stats.video_errors_at_end = sum(recent_errors[True])
    stats.audio_errors_at_end = sum(recent_errors[False])
    stats.seconds = time.perf_counter() - started
    return stats


def _take_video_frames(
    frames: Any,
    video: Any,
    observers: Sequence[FrameObserver],
    stats: ScanStats,
    worker: _ObserverThread | None,
) -> None:
    for frame in frames:
        stats.video_frames += 1
        if frame.is_corrupt:
            stats.corrupt_frames += 1
        position = _stream_seconds(frame.pts, video) if frame.pts is not None else None
        if position is None:
            position = (stats.video_end or 0.0) if stats.video_frames > 1 else 0.0
        step = float(frame.duration * video.time_base) if frame.duration and video.time_base else 0.0
        stats.video_end = max(stats.video_end or 0.0, position + step)
        due = [o for o in observers if o.due(position)]
        if due and worker is not None:
            worker.submit(SampledFrame(frame, position), due)
