"""Stream a stored evidence file over HTTP, with byte ranges (RFC 9110 §14), memory flat.

Choices where RFC 9110 leaves room:

- One range ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` → 206 with that range
  (an end past the file is cut at the file's end; a suffix longer than the
  file is the whole file).
- A range that starts at or past the end, ``bytes=-0``, any range of an empty
  file, or a malformed ``bytes=`` specifier (``bytes=5-2``, ``bytes=x-``) → 416
  with ``Content-Range: bytes */size``: a player that asks for nonsense is told
  so rather than sent the whole file.
- Several ranges → 200 with the whole file (the header is ignored, as the RFC
  allows): players ask for one range at a time, and a multipart answer is
  not worth its complexity.
- A unit other than ``bytes`` → ignored (200), as the RFC requires.
- ``If-Range`` with an ETag other than the current one → 200 with the whole file.

The body is read from the media store in blocks of at most 1 MiB; the
store's file handle is closed when the response is closed, sent or not.
"""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from flask import Response, current_app, has_request_context, request

from server.audit import service as audit
from server.auth.policy import Principal
from server.errors import Problem, problem_response
from server.extensions import db
from server.uploads.models import Media, MediaObject
from server.uploads.storage import UnknownObject

# Types a browser may show in place; anything else is offered as a download of
# opaque bytes, so an uploaded HTML or SVG file can never run in our origin.
_INLINE = re.compile(r"^(video|audio)/[a-z0-9][a-z0-9.+-]{0,60}$|^image/(jpeg|png|gif|webp|bmp|avif|heic|heif)$")
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_SPEC = re.compile(r"^(\d{1,19})?-(\d{1,19})?$")
OCTET_STREAM = "application/octet-stream"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The Range header asks for bytes the file does not have, or is malformed: 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole file. Raises ``Unsatisfiable``."""
    if header is None or not header.strip():
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [part.strip() for part in specs.split(",")]
    if len(parts) > 1:
        if any(not _SPEC.match(part) or part == "-" for part in parts):
            raise Unsatisfiable()
        return None
    match = _SPEC.match(parts[0])
    if match is None or parts[0] == "-":
        raise Unsatisfiable()
    first, last = match.group(1), match.group(2)
    if first is None:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last is not None and int(last) < start:
        raise Unsatisfiable()
    if start >= size:
        raise Unsatisfiable()
    end = size - 1 if last is None else min(int(last), size - 1)
    return ByteRange(start, end)


def safe_content_type(declared: str | None) -> tuple[str, bool]:
    """The Content-Type to send and whether the file may be shown inline.

    The declared type is the uploader's word: parameters are dropped, and only
    plain media types a browser plays or shows are served as themselves.
    """
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if not _MIME.match(mime):
        return OCTET_STREAM, False
    if _INLINE.match(mime):
        return mime, True
    return OCTET_STREAM, False


def _disposition(inline: bool, download_name: str | None) -> str:
    if download_name is None:
        return "inline" if inline else "attachment"
    # Only a name, never a path, and nothing that could break the header.
    name = re.sub(r"[\x00-\x1f\x7f\\/\"]", "_", download_name).strip(" .") or "evidence"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    utf8 = quote(name.encode("utf-8", "replace"), safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8}"


class _Blocks:
    """The response body: the store's blocks, with the store's reader closed by ``close``.

    The first block is read before the answer starts, so a missing or
    unreadable file is an error answer, not a cut-short 200.
    """

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._first = next(blocks, None)

    def __iter__(self) -> Iterator[bytes]:
        first, self._first = self._first, None
        if first is not None:
            yield first
            yield from self._blocks

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()


def _etag_matches(if_range: str, etag: str) -> bool:
    return if_range.strip() == f'"{etag}"'


def media_response(media: Media, range_header: str | None, *, download_name: str | None = None) -> Response:
    """Stream ``media``'s stored file (whole or one byte range); the caller has authorised the access."""
    from server.uploads.service import uploads

    store = uploads().store
    stored = db.session.get(MediaObject, media.sha256)
    if stored is None:
        raise Problem(404, "media-content-missing", "证据文件的内容尚未存储")
    size = stored.size
    etag = media.sha256
    content_type, inline = safe_content_type(media.content_type)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{etag}"', "Cache-Control": "private, no-store",
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
               "Content-Disposition": _disposition(inline, download_name)}
    if_range = request.headers.get("If-Range") if has_request_context() else None
    if if_range is not None and not _etag_matches(if_range, etag):
        range_header = None  # the client's copy is of another file: send the whole new one
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        return problem_response(416, "range-not-satisfiable", "请求的字节范围无效",
                                f"请求的字节范围无效或超出文件长度（{size} 字节）",
                                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    start, end = (0, size) if wanted is None else (wanted.start, wanted.end + 1)
    try:
        body = _Blocks(store.read(stored.key, start, end))
    except UnknownObject:
        log.error("media %s: stored object %s is missing from the media store", media.id, stored.key)
        raise Problem(404, "media-content-missing", "证据文件的内容在存储中不存在") from None
    response = current_app.response_class(body, status=200 if wanted is None else 206, mimetype=content_type,
                                          direct_passthrough=True)
    response.headers.update(headers)
    response.content_length = end - start
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    return response  # werkzeug closes ``body`` (and so the file) when the response is closed


def stream_media(principal: Principal, media_id: uuid.UUID, range_header: str | None) -> Response:
    """GET /api/v1/media/{id}/content: authorise as for the media record, stream, and record it in the audit log."""
    from server.uploads.service import get_media

    return audited_media_response(principal, get_media(principal, media_id, audit_action="media.stream"), range_header)


def audited_media_response(principal: Principal, media: Media, range_header: str | None) -> Response:
    """``media_response`` for a caller already authorised, recorded in the audit log with its outcome
    (a refused range or a file missing from the store is kept as ``failed`` although the request fails)."""

    def recorded(status: int, content_range: str | None) -> None:
        audit.record("media.stream", object_type="media", object_id=str(media.id), actor=principal,
                     outcome="success" if status < 400 else "failed",
                     details={"range": range_header, "status": status, "content_range": content_range})

    try:
        response = media_response(media, range_header)
    except Problem as problem:  # the file is not in the store
        recorded(problem.code or 500, None)
        raise
    recorded(response.status_code, response.headers.get("Content-Range"))
    return response
