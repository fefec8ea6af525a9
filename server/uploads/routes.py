"""tus 1.0.0 endpoints for evidence uploads, and media look-ups (docs/uploads.md).

The tus routes parse headers (``tus.py``), call one service function and
build the tus answer; the body reaches the service as blocks read from the
WSGI stream, never as a whole.
"""
from __future__ import annotations

import contextlib
import io
import os
import queue
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.clocks.models import ReadingKind
from server.clocks.observe import PARAMETER as DEVICE_CLOCK
from server.clocks.observe import observed
from server.errors import Problem
from server.uploads import schemas as s
from server.uploads import service, tus
from server.uploads.service import BodyTooLarge, BodyTruncated, UploadView
from server.uploads.storage import BLOCK_SIZE
from server.uploads.streaming import stream_media

blp = Blueprint("uploads", __name__, url_prefix="/api/v1/uploads",
                description="Resumable evidence uploads, tus 1.0.0 (docs/uploads.md)")
media_blp = Blueprint("media", __name__, url_prefix="/api/v1/media",
                      description="Stored evidence files and their verification")


@blp.before_request
def _check_tus_version() -> None:
    if request.method != "OPTIONS":
        tus.check_version(request.headers.get("Tus-Resumable"))


@blp.after_request
def _tus_resumable(response: Response) -> Response:
    response.headers["Tus-Resumable"] = tus.TUS_VERSION
    return response


# Reads start small and double while the body flows, up to 1 MiB: large reads keep
# the per-byte overhead of the Python stream layers low, small first reads keep what
# a connection that stalls early has already sent (a failed read loses its bytes).
FIRST_READ = 64 * 1024
# A refused PATCH's body up to this size is read before the answer (``RequestBody.drain``).
DRAIN_LIMIT = 64 * 1024 * 1024
LARGEST_READ = 1024 * 1024


# Blocks that bodies are received into, kept by the process for the next ones: a fresh 1 MiB
# bytearray is memory the kernel has to zero and map page by page as it is filled, which the
# profile of a PATCH showed costing a seventh of its time. Bounded, so memory stays flat.
_POOLED_BLOCKS = 8
_free_blocks: queue.SimpleQueue[bytearray] = queue.SimpleQueue()


def _take_block() -> bytearray:
    try:
        return _free_blocks.get_nowait()
    except queue.Empty:
        return bytearray(BLOCK_SIZE)


def _give_block(block: bytes | bytearray) -> None:
    if type(block) is bytearray and len(block) == BLOCK_SIZE and _free_blocks.qsize() < _POOLED_BLOCKS:
        _free_blocks.put(block)


class RequestBody:
    """The request body as blocks of at most ``BLOCK_SIZE`` bytes, straight from the WSGI stream."""

    def __init__(self) -> None:
        self.content_length: int | None = request.content_length
        self.started = False

    def drain(self, limit: int = DRAIN_LIMIT) -> None:
        """Read and drop an unread body of at most ``limit`` bytes, so the answer is not a reset.

        A server that answers before reading the body (423, 409, 410 …) has gunicorn
        drain 64 KiB and reset the connection; a proxy still sending the body then
        sees a broken pipe, answers 502 instead of the refusal and counts a failure
        of this server (nginx takes it out of rotation). tus clients send the whole
        body anyway, so reading it costs them nothing. A longer one is left to the reset.
        """
        if self.started or self.content_length is None or not 0 < self.content_length <= limit:
            return
        stream = request.environ.get("wsgi.input")
        if stream is None:
            return
        left = self.content_length
        try:
            while left > 0:
                piece = stream.read(min(left, 1 << 20))
                if not piece:
                    return
                left -= len(piece)
        except (ClientDisconnected, OSError, ValueError):
            return

    def release(self, block: bytes | bytearray) -> None:
        """A block handed out is no longer used (hashed, written): it may be filled again."""
        _give_block(block)

    def blocks(self, limit: int) -> Iterator[bytes | bytearray]:
        # The app-wide MAX_CONTENT_LENGTH is meant for JSON; an upload's body
        # may be as long as the room left in the upload (``limit``), and no longer.
        self.started = True
        direct = _GunicornBody.of(request.environ, self.content_length)
        restore = self._idle_timeout()
        try:
            if direct is not None:
                yield from direct.blocks(limit)
            else:
                yield from self._stream_blocks(self._stream(limit), limit)
        finally:
            restore()

    def _stream_blocks(self, stream: Any, limit: int) -> Iterator[bytes]:
        # Small reads gathered into full blocks: a read that fails (a reset,
        # the idle timeout) loses at most what it was waiting for, and what
        # came before it is handed over before the body is declared cut short.
        block = bytearray()
        received = 0
        cut = False
        read_size = FIRST_READ
        while self.content_length is None or received < self.content_length:
            try:
                # Never past the current block: a full block is written as soon as it is in.
                piece = stream.read(min(read_size, BLOCK_SIZE - len(block)))
            except RequestEntityTooLarge:
                raise BodyTooLarge() from None
            except (ClientDisconnected, OSError, ValueError):
                cut = True
                break
            if not piece:
                break
            if len(piece) >= read_size:
                read_size = min(read_size * 2, LARGEST_READ)
            received += len(piece)
            if received > limit:
                raise BodyTooLarge()
            if not block and len(piece) == BLOCK_SIZE:
                yield piece  # the common case once the body flows: no copy
                continue
            block += piece
            if len(block) >= BLOCK_SIZE:
                yield bytes(block)
                block.clear()
        if block:
            yield bytes(block)
        if cut or (self.content_length is not None and received < self.content_length):
            raise BodyTruncated()

    @staticmethod
    def _stream(limit: int) -> Any:
        environ = request.environ
        if environ.get("wsgi.input_terminated"):
            # The server ends the input at the body's end, chunked or not (gunicorn
            # does): read it directly, without werkzeug's LimitedStream, which copies
            # every byte twice more. The count in ``blocks`` enforces ``limit``.
            return environ["wsgi.input"]
        # One byte of slack: werkzeug refuses a read *after* its maximum (the
        # read that finds the end of a body of exactly that size); the count in
        # ``blocks`` refuses the excess itself.
        request.max_content_length = limit + 1
        try:
            return request.stream
        except RequestEntityTooLarge:
            raise BodyTooLarge() from None

    @staticmethod
    def _idle_timeout() -> Callable[[], None]:
        """Give up on a body that stops arriving (a tablet that changed networks leaves a half-open
        connection behind): what arrived is kept and the upload's lock is released, so the client's
        resumed PATCH is not refused as locked for as long as the dead connection would last."""
        sock = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
        seconds = current_app.config.get("UPLOAD_BODY_IDLE_SECONDS")
        if sock is None or not seconds or not hasattr(sock, "settimeout"):
            return lambda: None
        try:
            previous = sock.gettimeout()
            sock.settimeout(float(seconds))
        except OSError:
            return lambda: None

        def restore() -> None:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)

        return restore


class _GunicornBody:
    """A body of known length under gunicorn, received straight into the blocks handed on.

    gunicorn's ``wsgi.input`` passes every byte through three in-memory buffers (its unreader's,
    its reader's and the body's), each written, read back whole and sliced: the profile of a PATCH
    showed reading the body taking 40 % of its time, more than writing and syncing it. Here the
    bytes gunicorn already read past the headers are taken from its unreader, the rest is
    ``recv_into`` each block as it is handed on (no copy in Python at all), and gunicorn's count of
    the body left to read is kept exact, so the connection goes on to its next request as before.
    Used only when gunicorn's objects are the ones this was written against; anything else (another
    server, another gunicorn, a chunked body) reads ``wsgi.input``.
    """

    def __init__(self, body: Any, reader: Any, unreader: Any, sock: Any) -> None:
        self._body = body
        self._reader = reader
        self._unreader = unreader
        self._sock = sock

    @classmethod
    def of(cls, environ: Mapping[str, Any], content_length: int | None) -> _GunicornBody | None:
        sock = environ.get("gunicorn.socket")
        body = environ.get("wsgi.input")
        if sock is None or body is None or content_length is None:
            return None
        try:
            from gunicorn.http.body import Body, LengthReader
            from gunicorn.http.unreader import SocketUnreader
        except ImportError:
            return None
        reader = getattr(body, "reader", None)
        unreader = getattr(reader, "unreader", None)
        if (type(body) is not Body or type(reader) is not LengthReader or type(unreader) is not SocketUnreader
                or unreader.sock is not sock or reader.length != content_length
                or not isinstance(getattr(body, "buf", None), io.BytesIO) or body.buf.tell()
                or not isinstance(getattr(unreader, "buf", None), io.BytesIO)):
            return None
        return cls(body, reader, unreader, sock)

    def _readinto(self, view: memoryview) -> int:
        """Fill ``view`` from what gunicorn holds, else from one ``recv_into``; 0 at the end of the stream."""
        held = self._unreader.buf
        held.seek(0, os.SEEK_END)
        if held.tell():
            data = held.getvalue()
            count = min(len(data), len(view))
            view[:count] = data[:count]
            self._unreader.buf = io.BytesIO()
            self._unreader.buf.write(data[count:])  # pipelined bytes of the next request stay gunicorn's
        else:
            count = self._sock.recv_into(view)
        self._reader.length -= count
        return count

    def blocks(self, limit: int) -> Iterator[bytearray]:
        length = self._reader.length
        if length > limit:
            raise BodyTooLarge()
        received = 0
        while received < length:
            block = _take_block() if length - received >= BLOCK_SIZE else bytearray(length - received)
            view = memoryview(block)
            filled = 0
            try:
                while filled < len(block):
                    count = self._readinto(view[filled:])
                    if not count:
                        break
                    filled += count
            except OSError:  # a reset, or the idle timeout
                pass
            finally:
                view.release()
            received += filled
            if filled < len(block):
                # Where the next request would start is unknown: gunicorn closes the connection.
                self._body.failed = True
                if filled:
                    del block[filled:]
                    yield block
                raise BodyTruncated()
            yield block


def _answer(status: int, view: UploadView | None = None, headers: Mapping[str, str] | None = None) -> Response:
    response = current_app.response_class(status=status)
    del response.headers["Content-Type"]  # tus answers carry no body
    if view is not None:
        response.headers["Upload-Offset"] = str(view.offset)
        if view.expires_at is not None:
            response.headers["Upload-Expires"] = tus.http_date(view.expires_at)
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def _header(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": required, "description": description,
            "schema": {"type": "string", **schema}}


TUS_RESUMABLE = _header("Tus-Resumable", "The protocol version", required=True, enum=[tus.TUS_VERSION])
BINARY_BODY = {"content": {tus.OFFSET_OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}}
_TUS_ERRORS = ((401, "Not authenticated"), (403, "Your role does not upload, or the upload or record is not yours"),
               (412, "Tus-Resumable missing or not 1.0.0"))


def _documented(fn: Any) -> Any:
    for status, text in _TUS_ERRORS:
        fn = blp.alt_response(status, description=text)(fn)
    return fn


@blp.route("/")
class Uploads(MethodView):
    @blp.doc(summary="Server capabilities (tus discovery; no token needed)", parameters=[
        _header("Tus-Resumable", "May be sent; discovery answers whatever the version", enum=[tus.TUS_VERSION])])
    @blp.response(204, description="Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")
    def options(self) -> Response:
        """tus discovery"""
        ctx = service.uploads()
        return _answer(204, headers={"Tus-Version": tus.TUS_VERSION, "Tus-Extension": ",".join(ctx.extensions),
                                     "Tus-Max-Size": str(ctx.max_upload_bytes),
                                     "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS)})

    @requires(Permission.UPLOAD_MEDIA)
    @blp.doc(security=BEARER, parameters=[
        TUS_RESUMABLE,
        _header("Upload-Length", "Size of the whole file in bytes", required=True, pattern="^[0-9]{1,20}$"),
        _header("Upload-Metadata", "Comma-separated `key base64(value)`: sha256 (required), filename, filetype, "
                                   "media_id (tablets), device_id, capture_start"),
        _header("Upload-Checksum", "`sha1|sha256 base64(digest)` of this request's body (creation-with-upload)"),
        DEVICE_CLOCK,
    ], requestBody={**BINARY_BODY, "required": False,
                    "description": "Optional first bytes of the file (creation-with-upload)"})
    @blp.response(201, description="Created; Location is the upload's URL, Upload-Offset what was stored")
    @blp.alt_response(400, description="Malformed tus headers or metadata")
    @blp.alt_response(413, description="Upload-Length above the server's maximum")
    @blp.alt_response(415, description="A body that is not application/offset+octet-stream")
    @blp.alt_response(422, description="Invalid metadata: sha256, media record, device")
    @blp.alt_response(460, description="Checksum of the body or hash of the whole file does not match")
    @_documented
    @observed(ReadingKind.UPLOAD)
    def post(self) -> Response:
        """Create an upload (tus creation, creation-with-upload)"""
        length = tus.parse_length(request.headers.get("Upload-Length"), request.headers.get("Upload-Defer-Length"))
        # creation-with-upload: the first bytes come with the creation, typed as a PATCH body is.
        with_body = request.mimetype == tus.OFFSET_OCTET_STREAM
        if not with_body and request.content_length:
            tus.check_content_type(request.headers.get("Content-Type"))
        checksum = tus.parse_checksum(request.headers.get("Upload-Checksum")) if with_body else None
        view = service.create_upload(current_principal(), length, request.headers.get("Upload-Metadata"),
                                     RequestBody() if with_body else None, checksum)
        return _answer(201, view, {"Location": url_for("uploads.UploadItem", upload_id=view.id)})


@blp.route("/<uuid:upload_id>")
class UploadItem(MethodView):
    @requires(Permission.UPLOAD_MEDIA)
    @blp.doc(security=BEARER, parameters=[TUS_RESUMABLE])
    @blp.response(200, description="Upload-Offset (durable), Upload-Length, Upload-Metadata, Upload-Expires")
    @blp.alt_response(404, description="No such upload, or another department's")
    @blp.alt_response(410, description="Terminated, expired or quarantined")
    @blp.alt_response(423, description="Being finished by another request")
    @_documented
    def head(self, upload_id: uuid.UUID) -> Response:
        """The upload's durable offset"""
        view = service.upload_state(current_principal(), upload_id)
        headers = {"Upload-Length": str(view.length)}
        if view.metadata_header:
            headers["Upload-Metadata"] = view.metadata_header
        return _answer(200, view, headers)

    @requires(Permission.UPLOAD_MEDIA)
    @blp.doc(security=BEARER, parameters=[
        TUS_RESUMABLE,
        _header("Upload-Offset", "Where these bytes go: the current offset", required=True, pattern="^[0-9]{1,20}$"),
        _header("Upload-Checksum", "`sha1|sha256 base64(digest)` of this request's body"),
        DEVICE_CLOCK,
    ], requestBody={**BINARY_BODY, "required": True})
    @blp.response(204, description="Stored; Upload-Offset is the new durable offset")
    @blp.alt_response(400, description="Malformed headers, or a body cut short (Upload-Offset tells what was kept)")
    @blp.alt_response(404, description="No such upload, or another department's")
    @blp.alt_response(409, description="Upload-Offset is not the current offset")
    @blp.alt_response(410, description="Terminated, expired or quarantined")
    @blp.alt_response(413, description="More bytes than the upload has room for; nothing kept")
    @blp.alt_response(415, description="Content-Type is not application/offset+octet-stream")
    @blp.alt_response(423, description="Another PATCH of this upload is in progress")
    @blp.alt_response(460, description="checksum-mismatch (this PATCH dropped) or hash-mismatch (file quarantined)")
    @_documented
    @observed(ReadingKind.UPLOAD)
    def patch(self, upload_id: uuid.UUID) -> Response:
        """Append bytes at the current offset"""
        body = RequestBody()
        try:
            tus.check_content_type(request.headers.get("Content-Type"))
            offset = tus.parse_offset(request.headers.get("Upload-Offset"))
            checksum = tus.parse_checksum(request.headers.get("Upload-Checksum"))
            view = service.append(current_principal(), upload_id, offset, body, checksum)
        except Problem:
            body.drain()
            raise
        return _answer(204, view)

    @requires(Permission.UPLOAD_MEDIA)
    @blp.doc(security=BEARER, parameters=[TUS_RESUMABLE])
    @blp.response(204, description="Terminated; the partial bytes are deleted")
    @blp.alt_response(404, description="No such upload, or another department's")
    @blp.alt_response(409, description="Already complete: stored evidence is not deleted this way")
    @blp.alt_response(410, description="Already terminated, expired or quarantined")
    @blp.alt_response(423, description="A PATCH of this upload is in progress")
    @_documented
    def delete(self, upload_id: uuid.UUID) -> Response:
        """Terminate an unfinished upload (tus termination)"""
        service.terminate(current_principal(), upload_id)
        return _answer(204)


@media_blp.route("")
class MediaByHash(MethodView):
    @requires(Permission.READ_MEDIA)
    @media_blp.doc(security=BEARER)
    @media_blp.arguments(s.MediaQuery, location="query")
    @media_blp.response(200, s.MediaList)
    @media_blp.alt_response(401, description="Not authenticated")
    @media_blp.alt_response(422, description="sha256 missing or not 64 hex digits")
    def get(self, query: dict[str, Any]) -> Any:
        """Media with this SHA-256 that you may see"""
        return {"items": service.find_media(current_principal(), query["sha256"])}


@media_blp.route("/<uuid:media_id>")
class MediaItem(MethodView):
    @requires(Permission.READ_MEDIA)
    @media_blp.doc(security=BEARER)
    @media_blp.response(200, s.MediaSchema)
    @media_blp.alt_response(401, description="Not authenticated")
    @media_blp.alt_response(404, description="Not found or another department's")
    def get(self, media_id: uuid.UUID) -> Any:
        """A stored evidence file and its verification"""
        return service.get_media(current_principal(), media_id)


_BINARY = {"type": "string", "format": "binary"}
# A file is served as its own type when that is a video, audio or image type, else as octet-stream.
_FILE_TYPES = {kind: {"schema": _BINARY} for kind in ("video/*", "audio/*", "image/*", "application/octet-stream")}
_RANGE_HEADERS = {
    "Accept-Ranges": {"description": "bytes", "schema": {"type": "string"}},
    "ETag": {"description": "The file's SHA-256, quoted", "schema": {"type": "string"}},
}


@media_blp.route("/<uuid:media_id>/content")
class MediaContent(MethodView):
    @requires(Permission.READ_MEDIA)
    @media_blp.doc(security=BEARER, responses={"200": {"content": _FILE_TYPES}, "206": {"content": _FILE_TYPES}},
                   parameters=[
        {"in": "header", "name": "Range", "required": False, "schema": {"type": "string"},
         "description": "One byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n` (several ranges: the whole file)"},
        {"in": "header", "name": "If-Range", "required": False, "schema": {"type": "string"},
         "description": "The ETag you hold; another file's answers the whole file"}])
    @media_blp.response(200, _BINARY, content_type="application/octet-stream", headers=_RANGE_HEADERS,
                        description="The whole file, binary; Content-Type is the media's own when it is a "
                                    "video, audio or image type, else application/octet-stream")
    @media_blp.alt_response(206, schema=_BINARY, content_type="application/octet-stream",
                            description="The requested byte range, binary; Content-Range says which")
    @media_blp.alt_response(401, description="Not authenticated")
    @media_blp.alt_response(404, description="Not found, another department's, or the file is not stored yet")
    @media_blp.alt_response(416, description="Range malformed or beyond the end; Content-Range: bytes */size")
    def get(self, media_id: uuid.UUID) -> Response:
        """The evidence file itself, streamed, with HTTP Range for seeking; every call is in the audit log"""
        return stream_media(current_principal(), media_id, request.headers.get("Range"))
