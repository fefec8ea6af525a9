"""Media verification speed and memory on a long 720p bodycam-like clip.

    .venv/bin/python benchmarks/verify.py [--minutes 5] [--short-minutes 1] [--repeat 3]
        [--height 720] [--fps 30] [--preset veryfast] [--bitrate 4M] [--workdir DIR]

1. ffmpeg (Debian's) makes an H.264 + AAC clip of --minutes (testsrc2 with grain, a certificate QR
   code overlaid from 5 s to 15 s, --bitrate like a bodycam's), and a --short-minutes one the same
   way; both are cached in --workdir.
2. Each measurement runs --repeat times, each in a fresh process, so its peak RSS is its own
   (times are medians, RSS the highest):
   a bare PyAV decode loop (threads on, nothing else), a bare OpenCV decode loop (cv2.grab), and
   `media.verify_file` (hash + probe + one strict decode pass with the QR and lens detectors).
3. Prints the time of every stage, the ratio verification / bare decode, the real-time factor, and
   peak memory for the short and the long clip (flat memory: the two peaks are about equal).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
start = time.perf_counter()
with av.open(sys.argv[1]) as c:
    v = c.streams.video[0]; v.thread_type = "AUTO"
    frames = sum(1 for p in c.demux(v) for _ in p.decode())
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
BARE_CV2 = """
import json, resource, sys, time, cv2
start = time.perf_counter()
cap = cv2.VideoCapture(sys.argv[1]); frames = 0
while cap.grab(): frames += 1
print(json.dumps({"seconds": time.perf_counter() - start, "frames": frames,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
VERIFY = """
import json, resource, sys, time
from media import verify_file
start = time.perf_counter()
report = verify_file(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "status": report.status.value,
                  "timings": report.timings, "reasons": [r.code for r in report.reasons],
                  "certificates": [d.to_dict() for d in report.detections],
                  "frames": report.measurements.get("decoded_frames"),
                  "badge_samples": report.measurements.get("certificate_frames_examined"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_clip(path: Path, *, minutes: float, height: int, fps: int, preset: str, bitrate: str) -> Path:
    """Encode the clip unless it is cached."""
    if path.exists():
        return path
    import cv2  # only to draw the QR code

    width = height * 16 // 9 // 2 * 2
    code = cv2.QRCodeEncoder.create().encode(CERTIFICATE)
    code = cv2.resize(code, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST)
    code = cv2.copyMakeBorder(code, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255)
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
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is missing: apt-get install -y ffmpeg")
    args.workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for minutes in (args.short_minutes, args.minutes):
        name = f"clip-{minutes:g}min-{args.height}p{args.fps}-{args.preset}-{args.bitrate}.mp4"
        print(f"preparing {name} …", file=sys.stderr, flush=True)
        clip = make_clip(args.workdir / name, minutes=minutes, height=args.height, fps=args.fps,
                         preset=args.preset, bitrate=args.bitrate)
        pyav = measure(BARE_PYAV, clip, args.repeat)
        cv2_ = measure(BARE_CV2, clip, args.repeat)
        verified = measure(VERIFY, clip, args.repeat)
        rows.append((minutes, clip, pyav, cv2_, verified))

    print(f"\ncores: {os.cpu_count()}   medians of {args.repeat} runs   "
          f"clip: {args.height}p{args.fps} H.264 {args.preset} {args.bitrate}bit/s + AAC, QR shown 5–15 s\n")
    header = (f"{'clip':>7} {'MB':>6} {'frames':>6} | {'bare PyAV':>9} {'bare cv2':>8} | "
              f"{'hash':>5} {'probe':>5} {'decode':>7} {'(qr)':>6} {'(lens)':>6} {'verify':>7} | "
              f"{'÷PyAV':>5} {'÷cv2':>5} {'×realtime':>9} | {'RSS MB bare/verify':>18}")
    print(header)
    print("-" * len(header))
    for minutes, clip, pyav, cv2_, verified in rows:
        t = verified["timings"]
        seconds = minutes * 60
        print(
            f"{minutes:>5g}mn {clip.stat().st_size / 1e6:>6.0f} {verified['frames']:>6} | "
            f"{pyav['seconds']:>8.2f}s {cv2_['seconds']:>7.2f}s | "
            f"{t.get('hash', 0):>5.2f} {t.get('probe', 0):>5.2f} {t.get('decode', 0):>7.2f} "
            f"{t.get('badges', 0):>6.2f} {t.get('lens', 0):>6.2f} {verified['seconds']:>6.2f}s | "
            f"{verified['seconds'] / pyav['seconds']:>5.2f} {verified['seconds'] / cv2_['seconds']:>5.2f} "
            f"{seconds / verified['seconds']:>8.1f}× | "
            f"{pyav['peak_rss_mb']:>7.0f} / {verified['peak_rss_mb']:>6.0f}"
        )
    last = rows[-1][4]
    print(f"\nlong clip: status {last['status']} {last['reasons']}, "
          f"{last['badge_samples']} frames searched for QR codes, detections: "
          + json.dumps(last["certificates"], ensure_ascii=False))


if __name__ == "__main__":
    main()
