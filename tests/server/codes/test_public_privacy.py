"""No public answer of the inspection codes names a person in full, a certificate number, or any footage."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.codes import service
from server.directory.models import Certificate, Enterprise, User
from server.extensions import db
from server.seed import seed_demo_city
from server.tasks.models import InspectionTask
from server.uploads.models import Media

MAX_ANSWERS = 400


def _crawl(client: FlaskClient, starts: list[str]) -> dict[str, str]:
    """Every answer under /public/ reachable by GET from ``starts``, by URL (bounded)."""
    seen: dict[str, str] = {}
    queue = list(starts)
    while queue and len(seen) < MAX_ANSWERS:
        url = queue.pop(0)
        if url in seen:
            continue
        answer = client.get(url)
        assert answer.status_code < 500, url
        text = answer.get_data(as_text=True) if answer.mimetype.startswith(("text/", "application/", "image/svg")) \
            else ""
        answer.close()  # static files answer with an open file
        seen[url] = text
        for link in re.findall(r'(?:href|src|action)="([^"]+)"', text):
            target = urljoin(url, unescape(link))
            parts = urlsplit(target)
            if not parts.netloc and parts.path.startswith("/public/"):
                queue.append(parts._replace(fragment="").geturl())
    return seen


def test_no_answer_of_a_code_names_a_person_a_certificate_or_footage(app: Flask, client: FlaskClient) -> None:
    seed_demo_city()
    db.session.commit()
    with app.test_request_context("/"):
        codes = [code for task in db.session.scalars(select(InspectionTask))
                 if (code := service.issued_code(task)) is not None]
    assert len(codes) >= 5
    own_codes = [e.credit_code for e in db.session.scalars(select(Enterprise))]
    starts = ["/public/code-keys.json"]
    for code in codes:
        path = urlsplit(code.url).path
        starts += [path, f"{path}?credit_code={own_codes[0]}", f"{path}/qr.svg"]
    answers = _crawl(client, starts)
    assert len(answers) >= len(starts)
    assert sum('data-state="valid"' in text for text in answers.values()) >= 1
    people = list(db.session.scalars(select(User)))
    secrets = ({u.full_name for u in people if len(u.full_name) >= 2} | {u.username for u in people}
               | set(db.session.scalars(select(Certificate.number))) | set(db.session.scalars(select(Media.sha256))))
    assert len(secrets) > 30
    for url, text in answers.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} is in the public answer of {url}"
        assert "/review/" not in text and "/api/v1/media" not in text, url  # no footage, no office link
        assert not re.search(r"<(video|audio)\b", text), url
