"""Media verification speed and memory on a long 720p bodycam-like clip.

    .venv/bin/python benchmarks/verify.py [--minutes 5] [--short-minutes 1] [--repeat 3]
        [--height 720] [--fps 30] [--preset veryfast] [--bitrate 4M] [--workdir DIR]

1. ffmpeg (Debian's) makes an H.264 + AAC clip of --minutes (testsrc2 with grain, a certificate QR
   code overlaid from 5 s to 15 s, --bitrate like a bodycam's), and a --short-minutes one the same
   way; both are cached in --workdir.
2. Each measurement runs --repeat times, each in a fresh process, so its peak RSS is its own
   (times are medians, RSS the highest):
   a bare PyAV decode loop (threads on, nothing else), a bare OpenCV decode loop (cv2.grab), and
   `media.verify_file` (hash + probe + one strict decode pass with the QR and lens detectors), and in the
   same run the check of a signed capture manifest of that file (server.provenance: base64url, Ed25519,
   format, hash compare; mean of 200), shown beside the hash's time.
3. Prints the time of every stage, the ratio verification / bare decode, the real-time factor, and
   peak memory for the short and the long clip (flat memory: the two peaks are about equal), and a
   last ``result:`` line (JSON).

--quick: 6 s and 12 s clips at 360p, one run each, for the test suite; without ffmpeg's command the
clips are made with PyAV (no audio), and it says so.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"

CERTIFICATE = "ZF43048120210001"

# Each probe runs as `python -c CODE PATH` and prints one JSON object.
BARE_PYAV = """
import json, resource, sys, time, av
def cpu(): u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime
begun = cpu(); start = time.perf_counter()
with av.open(sys.argv[1]) as c:
    v = c.streams.video[0]; v.thread_type = "AUTO"
    frames = sum(1 for p in c.demux(v) for _ in p.decode())
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames, "cpu": cpu() - begun,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
BARE_CV2 = """
import json, resource, sys, time, cv2
def cpu(): u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime
begun = cpu(); start = time.perf_counter()
cap = cv2.VideoCapture(sys.argv[1]); frames = 0
while cap.grab(): frames += 1
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames, "cpu": cpu() - begun,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
VERIFY = """
import json, resource, sys, time
from media import verify_file
def cpu(): u = resource.getrusage(resource.RUSAGE_SELF); return u.ru_utime + u.ru_stime
begun = cpu(); start = time.perf_counter()
report = verify_file(sys.argv[1])
seconds, used, peak = time.perf_counter() - start, cpu() - begun, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# The capture manifest's check of the same file (server.provenance): decode, Ed25519 verify, format, hash compare.
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from server.provenance.service import b64url, decode, format_problems, verifies
key = Ed25519PrivateKey.generate()
public = b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
raw = json.dumps({"v": 1, "device_id": "BENCH-DOCK1", "counter": 17, "prev": "0" * 64, "sha256": report.sha256,
                  "size": report.measurements.get("size_bytes"), "media_type": "video/mp4",
                  "capture_start": "2026-12-03T09:00:00Z", "capture_end": "2026-12-03T09:05:00Z",
                  "device_clock": "2026-12-03T09:05:01Z", "media_id": None, "task_id": None, "inspection_id": None,
                  "inspector": None, "location": {"lat_e7": 263520000, "lon_e7": 1117900000, "accuracy_m": 8}},
                 separators=(",", ":")).encode()
text, signature = b64url(raw), b64url(key.sign(raw))
rounds, checked = 200, time.perf_counter()
for _ in range(rounds):
    got = decode(text, signature)
    assert verifies(public, got.raw, got.signature) and not format_problems(got.fields)
    assert got.fields["sha256"] == report.sha256
manifest = (time.perf_counter() - checked) / rounds
print(json.dumps({"seconds": seconds, "status": report.status.value, "manifest_seconds": manifest,
                  "timings": report.timings, "reasons": [r.code for r in report.reasons],
                  "certificates": [d.to_dict() for d in report.detections],
                  "frames": report.measurements.get("decoded_frames"),
                  "badge_samples": report.measurements.get("certificate_frames_examined"),
                  "cpu": used, "peak_rss_mb": peak / 1024}))
"""


def qr_code(module: int):  # type: ignore[no-untyped-def]
    import cv2  # only to draw the QR code

    code = cv2.QRCodeEncoder.create().encode(CERTIFICATE)
    code = cv2.resize(code, None, fx=module, fy=module, interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(code, 4 * module, 4 * module, 4 * module, 4 * module, cv2.BORDER_CONSTANT, value=255)


def make_clip_pyav(path: Path, *, minutes: float, height: int, fps: int) -> Path:
    """Without ffmpeg's command (the quick mode only): a noisy H.264 clip made with PyAV, the QR code
    shown from 5 s to 15 s (or the middle third of a shorter clip)."""
    import av
    import numpy as np

    width = height * 16 // 9 // 2 * 2
    seconds = minutes * 60
    qr_from, qr_to = (5.0, 15.0) if seconds > 15 else (seconds / 3, 2 * seconds / 3)
    code = qr_code(max(2, height // 120))
    rng = np.random.default_rng(1)
    base = np.tile(np.linspace(40, 200, width, dtype=np.uint8), (height, 1))
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for n in range(round(seconds * fps)):
            gray = (base + rng.integers(0, 20, (height, width), dtype=np.uint8) + n % 50).astype(np.uint8)
            if qr_from <= n / fps < qr_to:
                y, x = height // 5, width // 3
                gray[y:y + code.shape[0], x:x + code.shape[1]] = code[:height - y, :width - x]
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    return path


def make_clip(path: Path, *, minutes: float, height: int, fps: int, preset: str, bitrate: str) -> Path:
    """Encode the clip unless it is cached."""
    if path.exists():
        return path
    import cv2  # only to write the QR code's picture

    width = height * 16 // 9 // 2 * 2
    code = qr_code(5)
    qr_png = path.with_suffix(".qr.png")
    cv2.imwrite(str(qr_png), code)
    seconds = minutes * 60
    partial = path.with_suffix(".part.mp4")
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-i", str(qr_png),
        "-filter_complex",
        "[0:v]noise=alls=10:allf=t[n];[n][2:v]overlay=x=W/3:y=H/5:enable='between(t,5,15)'[v]",
        "-map", "[v]", "-map", "1:a", "-t", str(seconds),
        "-c:v", "libx264", "-preset", preset, "-b:v", bitrate, "-g", str(fps * 2),
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        str(partial),
    ], check=True)
    partial.rename(path)
    return path


def measure(code: str, path: Path, repeat: int) -> dict:
    """Run one measurement ``repeat`` times, each in a fresh interpreter: median time, highest RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(repeat):
        done = subprocess.run([str(PYTHON), "-c", code, str(path)], check=True, capture_output=True,
                              text=True, env=env, cwd=ROOT)
        runs.append(json.loads(done.stdout))
    runs.sort(key=lambda run: run["seconds"])
    median = dict(runs[len(runs) // 2])
    median["cpu"] = statistics.median(run["cpu"] for run in runs)
    median["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--short-minutes", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--bitrate", default="4M")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "inspect-once-media-bench")
    parser.add_argument("--quick", action="store_true",
                        help="6 s and 12 s clips at 360p, one run each (the test suite)")
    args = parser.parse_args()
    skipped = []
    if args.quick:
        args.minutes, args.short_minutes, args.repeat, args.height = 0.2, 0.1, 1, 360
    ffmpeg = shutil.which("ffmpeg") is not None
    if not ffmpeg:
        if not args.quick:
            raise SystemExit("ffmpeg is missing: apt-get install -y ffmpeg")
        skipped.append("ffmpeg's clip (testsrc2, AAC audio): ffmpeg not installed; clips made with PyAV, video only")
    args.workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for minutes in (args.short_minutes, args.minutes):
        name = f"clip-{minutes:g}min-{args.height}p{args.fps}-{args.preset}-{args.bitrate}.mp4"
        if not ffmpeg:
            name = "pyav-" + name
        print(f"preparing {name} …", file=sys.stderr, flush=True)
        if ffmpeg:
            clip = make_clip(args.workdir / name, minutes=minutes, height=args.height, fps=args.fps,
                             preset=args.preset, bitrate=args.bitrate)
        else:
            clip = args.workdir / name
            if not clip.exists():
                make_clip_pyav(clip, minutes=minutes, height=args.height, fps=args.fps)
        pyav = measure(BARE_PYAV, clip, args.repeat)
        cv2_ = measure(BARE_CV2, clip, args.repeat)
        verified = measure(VERIFY, clip, args.repeat)
        rows.append((minutes, clip, pyav, cv2_, verified))

    print(f"\ncores: {os.cpu_count()}   medians of {args.repeat} runs   "
          f"clip: {args.height}p{args.fps} H.264 {args.preset} {args.bitrate}bit/s + AAC, QR shown 5–15 s\n")
    header = (f"{'clip':>7} {'MB':>6} {'frames':>6} | {'bare PyAV':>9} {'bare cv2':>8} | "
              f"{'hash':>5} {'manif.':>7} {'probe':>5} {'decode':>7} {'(qr)':>6} {'(lens)':>6} {'verify':>7} | "
              f"{'÷PyAV':>5} {'÷cv2':>5} {'×realtime':>9} | {'RSS MB bare/verify':>18}")
    print(header)
    print("-" * len(header))
    for minutes, clip, pyav, cv2_, verified in rows:
        t = verified["timings"]
        seconds = minutes * 60
        print(
            f"{minutes:>5g}mn {clip.stat().st_size / 1e6:>6.0f} {verified['frames']:>6} | "
            f"{pyav['seconds']:>8.2f}s {cv2_['seconds']:>7.2f}s | "
            f"{t.get('hash', 0):>5.2f} {verified['manifest_seconds'] * 1000:>5.2f}ms "
            f"{t.get('probe', 0):>5.2f} {t.get('decode', 0):>7.2f} "
            f"{t.get('badges', 0):>6.2f} {t.get('lens', 0):>6.2f} {verified['seconds']:>6.2f}s | "
            f"{verified['seconds'] / pyav['seconds']:>5.2f} {verified['seconds'] / cv2_['seconds']:>5.2f} "
            f"{seconds / verified['seconds']:>8.1f}× | "
            f"{pyav['peak_rss_mb']:>7.0f} / {verified['peak_rss_mb']:>6.0f}"
        )
    print("\nCPU seconds of the measured part (user + system, all threads; on a shared machine steadier than "
          "the wall clock):")
    for minutes, _clip, pyav, _cv2, verified in rows:
        print(f"{minutes:>5g}mn  bare PyAV {pyav['cpu']:6.2f}   verify {verified['cpu']:6.2f}   "
              f"ratio {verified['cpu'] / pyav['cpu']:.2f}")
    for minutes, _clip, _pyav, _cv2, verified in rows:
        print(f"{minutes:>5g}mn  capture manifest check {verified['manifest_seconds'] * 1000:.3f} ms a file "
              f"(hash {verified['timings'].get('hash', 0) * 1000:.1f} ms), "
              f"{100 * verified['manifest_seconds'] / verified['seconds']:.4f} % of the verification")
    last = rows[-1][4]
    print(f"\nlong clip: status {last['status']} {last['reasons']}, "
          f"{last['badge_samples']} frames searched for QR codes, detections: "
          + json.dumps(last["certificates"], ensure_ascii=False))
    for why in skipped:
        print(f"skipped {why}")
    print("result: " + json.dumps({"benchmark": "verify", "quick": args.quick, "skipped": skipped, "clips": [
        {"minutes": minutes, "frames": verified["frames"], "pyav_s": round(pyav["seconds"], 3),
         "cv2_s": round(cv2_["seconds"], 3), "verify_s": round(verified["seconds"], 3),
         "hash_s": round(verified["timings"].get("hash", 0), 4),
         "manifest_check_ms": round(verified["manifest_seconds"] * 1000, 3),
         "manifest_over_verify_percent": round(100 * verified["manifest_seconds"] / verified["seconds"], 4),
         "verify_over_pyav": round(verified["seconds"] / pyav["seconds"], 3),
         "cpu_pyav_s": round(pyav["cpu"], 2), "cpu_verify_s": round(verified["cpu"], 2),
         "cpu_verify_over_pyav": round(verified["cpu"] / pyav["cpu"], 3),
         "realtime": round(minutes * 60 / verified["seconds"], 2), "status": verified["status"],
         "certificates": [c["text"] for c in verified["certificates"] if c.get("kind") == "certificate"],
         "rss_mb": round(verified["peak_rss_mb"], 1), "bare_rss_mb": round(pyav["peak_rss_mb"], 1)}
        for minutes, _clip, pyav, cv2_, verified in rows]}))


if __name__ == "__main__":
    main()
