"""What the offline client raises: every message is for the inspector (Simplified Chinese)."""
from __future__ import annotations


class FieldClientError(Exception):
    """Something the inspector needs to know; ``str()`` is the message (Chinese)."""


class LocalError(FieldClientError):
    """Refused on the tablet: unknown task, wrong input, not possible offline."""


class NotLoggedIn(FieldClientError):
    """This tablet has never logged in, so it knows no server, user or device."""


class AuthRequired(FieldClientError):
    """The session expired or was revoked and could not be refreshed: log in again."""


class ServerRefused(FieldClientError):
    """The server refused a whole request (not a single mutation).

    ``code`` is the problem's machine-readable slug, ``reason`` the server's
    Chinese title/detail (or the client's Chinese text for the code).
    """

    def __init__(self, code: str, reason: str, status: int) -> None:
        super().__init__(f"服务器拒绝了请求：{reason}（代码 {code}）")
        self.code = code
        self.reason = reason
        self.status = status


class ServerUnavailable(FieldClientError):
    """No usable answer after the retries; everything captured stays queued."""
