"""Evidence files to the server over tus, once the server has acknowledged their media records.

The tus protocol itself (tuspy, resumable sends, the URL storage) is in
``field_client.uploads``; this part decides which of the tablet's files go up,
keeps each one's state in the store and turns the server's answers into what
the inspector sees.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from field_client.errors import ServerUnavailable
from field_client.reports import UploadFailure, UploadReport
from field_client.session import API, Session
from field_client.store import Store
from field_client.uploads import (
    UPLOADS_PATH,
    SQLiteURLStorage,
    TusSender,
    UploadError,
    UploadJob,
    UploadUnauthorized,
    sha256_file,
)

ProgressCallback = Callable[[str, int, int], None]


class EvidenceUploads:
    """Uploads through ``requests`` (tuspy): ``http_session`` is ours unless one is given."""

    def __init__(self, store: Store, session: Session, *, http_session: requests.Session | None, chunk_size: int,
                 timeout: Any, progress: ProgressCallback) -> None:
        self.store = store
        self.session = session
        self._http_session = http_session
        self._own_session = http_session is None
        self.chunk_size = max(1, chunk_size)
        self.timeout = timeout
        self._progress = progress

    def close(self) -> None:
        """Close the HTTP session if it is our own."""
        if self._own_session and self._http_session is not None:
            self._http_session.close()
            self._http_session = None

    def http_session(self) -> requests.Session:
        """The ``requests`` session uploads go through (tuspy speaks HTTP with requests)."""
        if self._http_session is None:
            self._http_session = requests.Session()
            self._http_session.headers["User-Agent"] = "fieldsync/0.1"
        return self._http_session

    def unsent(self, user: str) -> int:
        """How many of ``user``'s files still wait to go up."""
        return len(self.store.uploads(user_id=user, status=("pending", "uploading")))

    def queue(self, user: str) -> None:
        """Queue the file of every media record made here that the server acknowledged."""
        vault = {v["sha256"]: v for v in self.store.vault_entries()}
        for mutation in self.store.acknowledged_media(user):
            sha = mutation.fields.get("sha256")
            entry = vault.get(sha) if isinstance(sha, str) else None
            if entry is None or self.store.upload(mutation.entity_id) is not None:
                continue
            size = mutation.fields.get("size")
            self.store.queue_upload(media_id=mutation.entity_id, user_id=user, sha256=str(sha),
                                    size=size if isinstance(size, int) else entry["size"],
                                    file_name=mutation.fields.get("file_name"),
                                    content_type=mutation.fields.get("content_type") or entry["content_type"],
                                    now=self.session.now())

    def _media_on_server(self, media_id: str, sha256: str) -> dict[str, Any] | None:
        """The server's media record for ``media_id`` if it holds the file, else None."""
        response = self.session.call("GET", f"{API}/media/{media_id}")
        body = response.body if isinstance(response.body, dict) else None
        if response.status != 200 or body is None or body.get("sha256") not in (None, sha256):
            return None
        if "uploaded_at" in body and not body["uploaded_at"]:
            return None  # the record is there, the file is not (yet)
        return body

    def upload_media(self, *, retry_failed: bool = False) -> UploadReport:
        """Upload, over tus, the file of every media record the server has acknowledged.

        Files the server already holds are skipped; an upload that was
        interrupted (network, crash, power) resumes at the offset the server
        confirmed. Each file's state is kept in the store (``status().uploads``).
        A file the server refuses for good — its content does not match the
        SHA-256 taken at capture (460 hash-mismatch), too large, forbidden — is
        marked ``failed`` with the server's code and reason and is not retried
        unless ``retry_failed``. Network or server trouble stops the step
        (``report.error``); the files wait for the next sync.
        """
        _, user, _ = self.session.identity()
        report = UploadReport()
        self.queue(user)
        if retry_failed:
            for row in self.store.uploads(user_id=user, status="failed"):
                self.store.update_upload(row["media_id"], self.session.now(), status="pending", error_code=None,
                                         error_reason=None)
        rows = self.store.uploads(user_id=user, status=("pending", "uploading"))
        if rows:
            progress = {"base": 0, "total": sum(r["size"] for r in rows)}
            server_url = str(self.store.get("server_url") or "")
            sender = TusSender(server_url + UPLOADS_PATH, session=self.http_session(),
                               storage=SQLiteURLStorage(self.store.transaction),
                               token=self.session.access_token, renew=self.session.renew_token,
                               chunk_size=self.chunk_size, timeout=self.timeout, sleep=self.session.sleep,
                               backoff=self.session.backoff, max_attempts=self.session.max_attempts)
            for row in rows:
                try:
                    self._upload_one(sender, row, report, progress)
                except (UploadError, ServerUnavailable) as exc:
                    report.error = str(exc)
                    break
                progress["base"] += row["size"]
        report.waiting = self.unsent(user)
        return report

    def _upload_one(self, sender: TusSender, row: dict[str, Any], report: UploadReport,
                    progress: dict[str, int]) -> None:
        media_id, sha, size = row["media_id"], row["sha256"], row["size"]
        path = self.store.vault_path(sha)
        if not path.is_file():
            self._upload_failed(row, report, "vault-missing", "本机证据库中找不到该文件，无法上传")
            return
        held = self._media_on_server(media_id, sha)
        if held is not None:
            self._upload_done(row, held, already=True)
            report.already += 1
            return
        self.store.update_upload(media_id, self.session.now(), status="uploading", attempts=row["attempts"] + 1)
        metadata = {"sha256": sha, "filename": row["file_name"] or sha,
                    "filetype": row["content_type"] or "application/octet-stream", "media_id": media_id}
        server_url = str(self.store.get("server_url") or "")
        job = UploadJob(path, size, sha, metadata, key=f"tablet|{server_url}|media:{media_id}|sha256:{sha}|{size}")

        def on_offset(offset: int) -> None:
            self.store.update_upload(media_id, self.session.now(), upload_offset=offset)
            self._progress("upload", progress["base"] + offset, progress["total"])

        def on_resume(offset: int) -> None:
            if offset:
                report.resumed += 1

        try:
            report.bytes_sent += sender.send(job, on_offset=on_offset, on_resume=on_resume)
        except UploadUnauthorized as exc:
            self.session.end_session("token-invalid", exc.reason)
        except UploadError as exc:
            if not exc.permanent:
                self.store.update_upload(media_id, self.session.now(), error_code=exc.code, error_reason=exc.reason)
                raise
            reason = exc.reason
            if exc.code == "hash-mismatch":
                actual, _ = sha256_file(path)
                if actual != sha:
                    reason = (f"本机证据库中的文件已损坏：其 SHA-256 为 {actual}，与采集时的 {sha} 不符。"
                              "文件未被服务器接收，请联系管理员")
                else:
                    reason = (f"服务器收到的文件与采集时的 SHA-256 不符（{exc.reason}）。不会自动重试；"
                              "网络恢复正常后可执行 fieldsync upload --retry-failed 重新上传")
            self._upload_failed(row, report, exc.code, reason)
            return
        report.uploaded += 1
        try:
            confirmed = self._media_on_server(media_id, sha)
        except ServerUnavailable:
            confirmed = None  # the server accepted the last byte with the hash checked; confirm next time
        self._upload_done(row, confirmed, already=False)

    def _upload_done(self, row: dict[str, Any], media: dict[str, Any] | None, *, already: bool) -> None:
        verification = media.get("verification") if media else None
        status = verification.get("status") if isinstance(verification, dict) else None
        now = self.session.now()
        with self.store.transaction():
            self.store.update_upload(row["media_id"], now, status="done", upload_offset=row["size"], error_code=None,
                                     error_reason=None, already_held=int(already), verification=status, done_at=now)
            self.store.mark_vault_uploaded(row["sha256"], now)

    def _upload_failed(self, row: dict[str, Any], report: UploadReport, code: str, reason: str) -> None:
        self.store.update_upload(row["media_id"], self.session.now(), status="failed", error_code=code,
                                 error_reason=reason)
        report.failed.append(UploadFailure(row["media_id"], row["file_name"], row["sha256"], code, reason))
