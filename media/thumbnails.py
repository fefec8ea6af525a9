"""Review aids: a thumbnail, and a contact sheet of keyframes at a fixed interval.

Video frames are found by seeking to the keyframe at or before each wanted time and decoding only
that frame, so the cost grows with the number of tiles, not with the video's length.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av.error
import cv2
import numpy as np
import numpy.typing as npt

from media._scan import fit_within
from media.errors import MediaError
from media.probe import open_container, probe_container

BGRImage = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Picture:
    """A JPEG-encoded review picture."""

    jpeg: bytes
    width: int
    height: int
    times: tuple[float, ...]
    """Positions (seconds) of the frames shown; empty for a photo."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JPEG to ``path`` and return it."""
        target = Path(path)
        target.write_bytes(self.jpeg)
        return target


def _encode(image: BGRImage, quality: int) -> Picture:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError("could not encode the JPEG", code="not-media")
    return Picture(jpeg=buffer.tobytes(), width=image.shape[1], height=image.shape[0], times=())


def _to_bgr(frame: Any, max_side: int | None) -> BGRImage:
    width, height = fit_within(frame.width, frame.height, max_side)
    image = frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA")
    return np.ascontiguousarray(image.to_ndarray())


def _frame_at(container: Any, stream: Any, seconds: float) -> Any | None:
    """The keyframe at or before ``seconds`` (or the first frame after it when there is none)."""
    offset = int(seconds / stream.time_base) + (stream.start_time or 0)
    try:
        container.seek(offset, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return None
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError:
        return None
    return None


def _frame_time(frame: Any, stream: Any) -> float:
    if frame.pts is None:
        return 0.0
    return float((frame.pts - (stream.start_time or 0)) * stream.time_base)


def make_thumbnail(
    path: str | os.PathLike[str],
    *,
    max_side: int = 320,
    at: float | None = None,
    quality: int = 85,
) -> Picture:
    """A JPEG thumbnail of the photo or video at ``path``, at most ``max_side`` pixels across.

    For a video the frame is the keyframe at or before ``at`` seconds (default: a tenth into the
    video, at most 10 s in, past the black frames cameras often start with).
    """
    with open_container(path) as container:
        probed = probe_container(path, container)
        if not container.streams.video:
            raise MediaError("no picture to make a thumbnail of", code="no-decodable-stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if probed.kind == "photo":
            frame = next(iter(container.decode(stream)), None)
            when: tuple[float, ...] = ()
        else:
            wanted = at if at is not None else min((probed.duration or 0.0) * 0.1, 10.0)
            frame = _frame_at(container, stream, wanted)
            when = (round(_frame_time(frame, stream), 3),) if frame is not None else ()
        if frame is None:
            raise MediaError("no decodable frame for a thumbnail", code="no-decodable-stream")
        picture = _encode(_to_bgr(frame, max_side), quality)
    return Picture(jpeg=picture.jpeg, width=picture.width, height=picture.height, times=when)


def _label(tile: BGRImage, text: str) -> None:
    scale = max(0.35, tile.shape[1] / 480)
    thickness = 1 if scale < 0.8 else 2
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(tile, (0, tile.shape[0] - h - base - 6), (w + 8, tile.shape[0]), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, tile.shape[0] - base - 3), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), thickness, cv2.LINE_AA)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def make_contact_sheet(
    path: str | os.PathLike[str],
    *,
    interval: float = 10.0,
    columns: int = 4,
    tile_width: int = 240,
    max_tiles: int = 48,
    quality: int = 80,
) -> Picture:
    """A grid of the keyframes at 0, ``interval``, 2×``interval`` … seconds, each labelled with
    its time.

    At most ``max_tiles`` tiles: for a longer video the interval is widened to fit. A photo gives
    a one-tile sheet.
    """
    if interval <= 0 or columns <= 0 or max_tiles <= 0:
        raise ValueError("interval, columns and max_tiles must be positive")
    tiles: list[BGRImage] = []
    times: list[float] = []
    with open_container(path) as container:
        probed = probe_container(path, container)
        if not container.streams.video:
            raise MediaError("no picture to make a contact sheet of", code="no-decodable-stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = probed.duration or 0.0
        if probed.kind == "photo":
            wanted: list[float] = [0.0]
        else:
            step = max(interval, duration / max_tiles)
            # Times within the video only: 0, step, … strictly before its end.
            count = min(max_tiles, max(1, math.ceil(duration / step - 1e-9)))
            wanted = [i * step for i in range(count)]
        last_pts: int | None = None
        for seconds in wanted:
            if probed.kind == "photo":
                frame = next(iter(container.decode(stream)), None)
            else:
                frame = _frame_at(container, stream, seconds)
            if frame is None:
                continue
            if frame.pts is not None and frame.pts == last_pts:
                continue  # keyframes sparser than the interval: do not repeat a tile
            last_pts = frame.pts
            tile = _to_bgr(frame, None)
            height = max(2, round(tile.shape[0] * tile_width / tile.shape[1]))
            tile = np.asarray(
                cv2.resize(tile, (tile_width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
            moment = _frame_time(frame, stream)
            if probed.kind != "photo":
                _label(tile, _clock(moment))
            tiles.append(tile)
            times.append(round(moment, 3))
    if not tiles:
        raise MediaError("no decodable frame for a contact sheet", code="no-decodable-stream")
    tile_height = max(t.shape[0] for t in tiles)
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    gap = 4
    sheet = np.full(
        (rows * tile_height + (rows + 1) * gap, columns * tile_width + (columns + 1) * gap, 3),
        32, np.uint8,
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        y = gap + row * (tile_height + gap)
        x = gap + column * (tile_width + gap)
        sheet[y:y + tile.shape[0], x:x + tile_width] = tile
    picture = _encode(sheet, quality)
    return Picture(jpeg=picture.jpeg, width=picture.width, height=picture.height, times=tuple(times))
