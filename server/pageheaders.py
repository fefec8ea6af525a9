"""The headers of the pages the public opens without logging in (``/public/``): one policy, three variations."""
from __future__ import annotations

from flask import Response


def public_page_headers(response: Response, *, script: str = "'none'", referrer: str = "no-referrer",
                        cache: str | None = None) -> Response:
    """Everything from this server only (no CDN), never framed, forms posting here; ``script`` is the pages' own
    script source, if any; ``cache`` a Cache-Control when a page must not be kept by a proxy."""
    response.headers.setdefault("Content-Security-Policy",
                                f"default-src 'self'; script-src {script}; object-src 'none'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", referrer)
    if cache is not None:
        response.headers.setdefault("Cache-Control", cache)
    return response
