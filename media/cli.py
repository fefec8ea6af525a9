"""Command line: ``python -m media verify FILE...`` and friends, printing JSON.

* ``verify FILE...`` – one JSON report per file (a JSON object per line, or indented with
  ``--indent``); exit status 1 if any file failed verification, 0 otherwise.
* ``probe FILE...`` – the declared properties only.
* ``continuity`` – reads ``{"segments": [{"start", "duration", "name"?}], "tolerance"?,
  "window"?: {"start", "end"}}`` (or a bare list of segments) from standard input; times are
  seconds or ISO 8601 with a timezone, and come back in the same form. Exit status 1 when the
  recording has gaps or overlaps, or leaves part of the window uncovered.
* ``thumbnail FILE OUT`` and ``contact-sheet FILE OUT`` – write JPEG review pictures.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any, TextIO

from media.continuity import DEFAULT_TOLERANCE, Segment, analyse_continuity
from media.digest import normalise_sha256
from media.errors import MediaError
from media.probe import probe
from media.thumbnails import make_contact_sheet, make_thumbnail
from media.verify import VerifyOptions, verify_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _print(document: Any, indent: int | None, out: TextIO) -> None:
    out.write(json.dumps(document, ensure_ascii=False, indent=indent) + "\n")


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    options = VerifyOptions(
        certificates=not args.no_certificates, lens=not args.no_lens,
        lens_min_duration=args.lens_min_duration,
    )
    status = EXIT_OK
    for path in args.files:
        report = verify_file(path, expected_sha256=args.sha256, options=options)
        _print(report.to_dict(), args.indent, out)
        if report.failed:
            status = EXIT_FAILED
    return status


def _probe(args: argparse.Namespace, out: TextIO) -> int:
    status = EXIT_OK
    for path in args.files:
        try:
            _print({"path": path, **probe(path).to_dict()}, args.indent, out)
        except MediaError as error:
            _print({"path": path, "error": error.code, "message": str(error)}, args.indent, out)
            status = EXIT_FAILED
    return status


def _parse_time(value: Any, zones: list[tzinfo]) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r}: ISO times need a timezone")
    zones.append(parsed.tzinfo)
    return parsed.timestamp()


def _render_times(document: Any, zone: tzinfo | None) -> Any:
    """Turn the report's time fields back into ISO strings when the input used them."""
    if zone is None:
        return document
    keys = {"start", "end"}
    if isinstance(document, dict):
        return {
            k: (datetime.fromtimestamp(v, zone).isoformat()
                if k in keys and isinstance(v, (int, float)) else _render_times(v, zone))
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [_render_times(v, zone) for v in document]
    return document


def _continuity(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    try:
        data = json.load(stdin)
        if isinstance(data, list):
            data = {"segments": data}
        zones: list[tzinfo] = []
        segments = [
            Segment(
                start=_parse_time(item["start"], zones),
                duration=float(item["duration"]),
                name=str(item["name"]) if item.get("name") is not None else None,
            )
            for item in data["segments"]
        ]
        tolerance = float(data.get("tolerance", args.tolerance))
        window = None
        if data.get("window"):
            window = (_parse_time(data["window"]["start"], zones),
                      _parse_time(data["window"]["end"], zones))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        sys.stderr.write(f"media continuity: bad input: {error}\n")
        return EXIT_USAGE
    report = analyse_continuity(segments, tolerance=tolerance, window=window)
    document = report.to_dict()
    _print(_render_times(document, zones[0] if zones else None), args.indent, out)
    incomplete = report.window is not None and not report.window.complete
    return EXIT_FAILED if (not report.continuous or incomplete) else EXIT_OK


def _picture(args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.command == "thumbnail":
            picture = make_thumbnail(args.file, max_side=args.max_side, at=args.at)
        else:
            picture = make_contact_sheet(
                args.file, interval=args.interval, columns=args.columns, tile_width=args.tile_width
            )
    except MediaError as error:
        _print({"path": args.file, "error": error.code, "message": str(error)}, None, out)
        return EXIT_FAILED
    picture.save(args.out)
    _print({"path": args.file, "out": args.out, "width": picture.width, "height": picture.height,
            "times": list(picture.times)}, None, out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m media``."""
    parser = argparse.ArgumentParser(prog="python -m media", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="verify files and print a JSON report per file")
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument("--sha256", help="expected SHA-256 (one file only)")
    verify.add_argument("--no-certificates", action="store_true", help="skip QR detection")
    verify.add_argument("--no-lens", action="store_true", help="skip covered-lens detection")
    verify.add_argument("--lens-min-duration", type=float, default=VerifyOptions.lens_min_duration)
    verify.add_argument("--indent", type=int, default=None)

    probe_ = commands.add_parser("probe", help="print declared properties")
    probe_.add_argument("files", nargs="+", metavar="FILE")
    probe_.add_argument("--indent", type=int, default=None)

    continuity = commands.add_parser("continuity", help="gaps and overlaps of segments (stdin)")
    continuity.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    continuity.add_argument("--indent", type=int, default=None)

    thumbnail = commands.add_parser("thumbnail", help="write a JPEG thumbnail")
    thumbnail.add_argument("file")
    thumbnail.add_argument("out")
    thumbnail.add_argument("--max-side", type=int, default=320)
    thumbnail.add_argument("--at", type=float, default=None, help="seconds into a video")

    sheet = commands.add_parser("contact-sheet", help="write a JPEG grid of keyframes")
    sheet.add_argument("file")
    sheet.add_argument("out")
    sheet.add_argument("--interval", type=float, default=10.0)
    sheet.add_argument("--columns", type=int, default=4)
    sheet.add_argument("--tile-width", type=int, default=240)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "verify" and args.sha256 is not None:
        if len(args.files) != 1:
            parser.error("--sha256 checks one file at a time")
        try:
            normalise_sha256(args.sha256)
        except ValueError as error:
            parser.error(str(error))
    out = stdout if stdout is not None else sys.stdout
    if args.command == "verify":
        return _verify(args, out)
    if args.command == "probe":
        return _probe(args, out)
    if args.command == "continuity":
        return _continuity(args, stdin if stdin is not None else sys.stdin, out)
    return _picture(args, out)
