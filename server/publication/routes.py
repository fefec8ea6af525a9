"""The public results page ``/public/`` and its feed ``/public/feed.json``: no log-in, Chinese, no CDN."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for

from server.errors import Problem
from server.publication import public

bp = Blueprint("public", __name__, url_prefix="/public", template_folder="templates",
               static_folder="static", static_url_path="/static")

_DIGITS = re.compile(r"[0-9]{1,6}")


def _page(name: str) -> int:
    raw = request.args.get(name, "1")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= public.MAX_PAGE:
        raise Problem(400, "bad-request", "页码无效", errors={name: ["页码应为 1 至 10000 之间的整数"]})
    return int(raw)


@bp.after_request
def public_headers(response: Response) -> Response:
    # Everything is served from here (no CDN, no script); the page may be cached briefly by the public.
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; script-src 'none'; object-src 'none'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


@bp.get("/")
def index() -> Any:
    results, plans = public.results(_page("page")), public.plans(_page("plans_page"))
    return render_template("public/index.html", results=results, plans=plans, args=request.args)


@bp.get("/feed.json")
def feed() -> Any:
    page = _page("page")
    results, plans = public.results(page), public.plans(page)
    more = results.more or plans.more
    return jsonify({
        "title": "祁阳市行政执法结果公开", "page": page,
        "next": url_for("public.feed", page=page + 1, _external=False) if more else None,
        "results": [public.entry_json(e) for e in results.items],
        "plans": [public.plan_json(p) for p in plans.items],
    })
