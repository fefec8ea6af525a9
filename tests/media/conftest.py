"""Media made by the tests themselves: Debian's ffmpeg for encoded footage, OpenCV for pictures.

Nothing is downloaded. Generators are cached per test session, so a file used by several tests is
encoded once. Without ffmpeg the tests that need it skip on a developer's machine and fail loudly
in CI (``CI=true``), where ``.ci/run`` installs the package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

Image = npt.NDArray[np.uint8]

CERTIFICATE = "ZF43048120210001"
OTHER_CERTIFICATE = "ZF43048120219999"


def require_ffmpeg() -> str:
    """The ffmpeg executable; skip without it, except in CI where its absence is a failure."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    message = "ffmpeg is missing: install Debian's 'ffmpeg' package (apt-get install -y ffmpeg)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + "; .ci/run installs it before the tests", pytrace=False)
    pytest.skip(message)


def run_ffmpeg(*args: str, stdin: bytes | None = None) -> None:
    """Run ffmpeg quietly, raising with its message on failure."""
    command = [require_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    if stdin is not None:
        command.remove("-nostdin")
    subprocess.run(command, input=stdin, check=True, capture_output=True, timeout=120)


def qr_image(text: str, module: int = 5) -> Image:
    """A black-on-white QR code of ``text`` with its quiet zone, ``module`` pixels per module."""
    code = cv2.QRCodeEncoder.create().encode(text)
    code = cv2.resize(code, None, fx=module, fy=module, interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(code, 4 * module, 4 * module, 4 * module, 4 * module,
                              cv2.BORDER_CONSTANT, value=255)


def damaged_qr_image(text: str, module: int = 5) -> Image:
    """A QR code whose finder patterns are intact but whose data modules are scrambled: located by
    a detector, but not readable (a worn or half-covered certificate)."""
    code = qr_image(text, module)
    rng = np.random.default_rng(3)
    size = code.shape[0] // module
    keep = 4 + 8  # quiet zone + finder pattern with its separator, in modules
    for row in range(keep, size - keep):
        for column in range(keep, size - keep):
            code[row * module:(row + 1) * module, column * module:(column + 1) * module] = (
                255 if rng.random() > 0.5 else 0)
    return code


def scene(width: int, height: int, index: int) -> Image:
    """A busy colour picture (a moving gradient with shapes) that is clearly not a covered lens."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (x * 255 // max(1, width - 1) + index * 3) % 256
    frame[..., 1] = (y * 255 // max(1, height - 1)) % 256
    frame[..., 2] = ((x // 16 + y // 16) % 2) * 120 + 60
    cv2.circle(frame, ((index * 7) % width, height // 2), height // 6, (30, 200, 240), -1)
    cv2.putText(frame, f"{index:04d}", (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                (255, 255, 255), 2)
    return frame


def paste(frame: Image, picture: Image, x: int, y: int) -> Image:
    """``frame`` with the grayscale ``picture`` pasted at (x, y)."""
    out = frame.copy()
    h, w = picture.shape[:2]
    out[y:y + h, x:x + w] = picture[..., None] if picture.ndim == 2 else picture
    return out


def encode_frames(
    path: Path,
    frames: Iterator[Image],
    *,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    audio: bool = True,
    extra: Sequence[str] = (),
) -> Path:
    """H.264 (+ AAC sine) MP4 from raw BGR frames piped into ffmpeg."""
    raw = b"".join(f.tobytes() for f in frames)
    inputs = ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps),
              "-i", "-"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps)]
    if audio:
        codecs += ["-c:a", "aac", "-b:a", "32k", "-shortest"]
    run_ffmpeg(*inputs, *codecs, *extra, str(path), stdin=raw)
    return path


class MediaFactory:
    """Builds test media on demand, once per session each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, Path] = {}

    def _once(self, name: str, build: Callable[[Path], Path]) -> Path:
        if name not in self._cache:
            self._cache[name] = build(self.root / name)
        return self._cache[name]

    def copy(self, source: Path, name: str) -> Path:
        """A copy of ``source`` under a new name (e.g. a wrong extension)."""
        target = self.root / name
        shutil.copyfile(source, target)
        return target

    # -- clean footage ---------------------------------------------------------------------------
    def clean_video(self) -> Path:
        """4 s of testsrc2 at 320x240, 25 fps, H.264 + AAC, moov at the end, with a creation time."""
        return self._once("clean.mp4", lambda p: (run_ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
            "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", "25", "-c:a", "aac", "-b:a", "32k", "-shortest",
            "-metadata", "creation_time=2024-05-01T01:30:00Z", str(p)), p)[1])

    def faststart_video(self) -> Path:
        """The clean video with its index (moov) moved to the front."""
        return self._once("faststart.mp4", lambda p: (run_ffmpeg(
            "-i", str(self.clean_video()), "-c", "copy", "-movflags", "+faststart", str(p)), p)[1])

    def silent_mkv(self) -> Path:
        """3 s of testsrc in Matroska without audio (a container that declares no frame count)."""
        return self._once("silent.mkv", lambda p: (run_ffmpeg(
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "3",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(p)), p)[1])

    def audio_only(self) -> Path:
        """2 s of sine in an M4A."""
        return self._once("voice.m4a", lambda p: (run_ffmpeg(
            "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=2",
            "-c:a", "aac", "-b:a", "32k", str(p)), p)[1])

    # -- damaged footage -------------------------------------------------------------------------
    def truncated_moov_missing(self) -> Path:
        """The clean video cut in the middle: its index, written last, is gone."""
        def build(p: Path) -> Path:
            data = self.clean_video().read_bytes()
            p.write_bytes(data[: len(data) * 6 // 10])
            return p
        return self._once("cut-no-moov.mp4", build)

    def truncated_mid_mdat(self) -> Path:
        """The faststart video cut in the middle of its media data: index present, frames missing."""
        def build(p: Path) -> Path:
            data = self.faststart_video().read_bytes()
            p.write_bytes(data[: len(data) * 6 // 10])
            return p
        return self._once("cut-mid-mdat.mp4", build)

    def corrupted_video(self) -> Path:
        """The clean video with bytes overwritten inside its H.264 data; the container is intact."""
        def build(p: Path) -> Path:
            data = bytearray(self.clean_video().read_bytes())
            rng = np.random.default_rng(7)
            middle = len(data) // 2
            for offset in range(middle - 6000, middle + 6000, 400):
                data[offset:offset + 16] = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
            p.write_bytes(bytes(data))
            return p
        return self._once("damaged.mp4", build)

    def text_named_mp4(self) -> Path:
        """A text file that calls itself a video."""
        def build(p: Path) -> Path:
            p.write_text("执法记录 — this is not a video\n" * 200, encoding="utf-8")
            return p
        return self._once("notes.mp4", build)

    # -- certificate shown and lens covered ------------------------------------------------------
    def certificate_video(self, text: str = CERTIFICATE) -> Path:
        """6 s at 480x360: the certificate's QR code is on screen from 1.0 s to 3.0 s."""
        width, height, fps, seconds = 480, 360, 10, 6.0
        code = qr_image(text, module=5)

        def frames() -> Iterator[Image]:
            for i in range(int(fps * seconds)):
                frame = scene(width, height, i)
                if 1.0 <= i / fps < 3.0:
                    frame = paste(frame, code, 150, 60)
                yield frame
        return self._once(f"certificate-{text}.mp4", lambda p: encode_frames(
            p, frames(), width=width, height=height, fps=fps, seconds=seconds))

    def covered_video(self) -> Path:
        """10 s at 320x240, 10 fps: a busy scene, except black (lens covered) from 2.0 s to 6.0 s
        and a bright featureless grey (a palm over the lens) from 6.5 s to the end."""
        width, height, fps, seconds = 320, 240, 10, 10.0

        def frames() -> Iterator[Image]:
            for i in range(int(fps * seconds)):
                t = i / fps
                if 2.0 <= t < 6.0:
                    yield np.full((height, width, 3), 4, np.uint8)
                elif t >= 6.5:
                    yield np.full((height, width, 3), (150, 170, 200), np.uint8)
                else:
                    yield scene(width, height, i)
        return self._once("covered.mp4", lambda p: encode_frames(
            p, frames(), width=width, height=height, fps=fps, seconds=seconds))

    def hd_certificate_video(self) -> Path:
        """2 s at 1280x720 with the certificate's QR code on screen throughout (no audio)."""
        width, height, fps, seconds = 1280, 720, 5, 2.0
        code = qr_image(CERTIFICATE, module=6)
        frames = (paste(scene(width, height, i), code, 500, 200) for i in range(int(fps * seconds)))
        return self._once("certificate-hd.mp4", lambda p: encode_frames(
            p, frames, width=width, height=height, fps=fps, seconds=seconds, audio=False))

    def plain_video(self) -> Path:
        """5 s of a busy scene: no certificate, lens never covered."""
        width, height, fps, seconds = 320, 240, 10, 5.0
        frames = (scene(width, height, i) for i in range(int(fps * seconds)))
        return self._once("plain.mp4", lambda p: encode_frames(
            p, frames, width=width, height=height, fps=fps, seconds=seconds))

    # -- photos ----------------------------------------------------------------------------------
    def photo(self, name: str, *, certificates: Sequence[str] = (), width: int = 800,
              height: int = 600, module: int = 4, picture: Image | None = None) -> Path:
        """A photo (format from ``name``'s extension) showing the QR codes of ``certificates``."""
        def build(p: Path) -> Path:
            image = scene(width, height, 11) if picture is None else picture
            for index, text in enumerate(certificates):
                code = qr_image(text, module=module)
                image = paste(image, code, 20 + index * (code.shape[1] + 40), height // 4)
            if not cv2.imwrite(str(p), image):
                raise RuntimeError(f"OpenCV could not write {p}")
            return p
        return self._once(name, build)


def exif_app1(taken: str, offset: str | None = None) -> bytes:
    """A JPEG APP1 segment whose EXIF says the photo was taken at ``taken`` ("YYYY:MM:DD HH:MM:SS")."""
    import struct

    values = [(0x9003, taken.encode() + b"\x00")]
    if offset is not None:
        values.append((0x9011, offset.encode() + b"\x00"))
    exif_ifd_at = 8 + 2 + 12 + 4
    data_at = exif_ifd_at + 2 + 12 * len(values) + 4
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x8769, 4, 1, exif_ifd_at) + b"\0" * 4
    entries, blobs = b"", b""
    for tag, blob in values:
        entries += struct.pack("<HHII", tag, 2, len(blob), data_at + len(blobs))
        blobs += blob
    exif_ifd = struct.pack("<H", len(values)) + entries + b"\0" * 4
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd0 + exif_ifd + blobs
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    """Factory for generated test media (see :class:`MediaFactory`)."""
    return MediaFactory(tmp_path_factory.mktemp("media"))
