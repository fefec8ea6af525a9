"""Log-on to the review app: the API's accounts, a session on the server, CSRF on every form."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.extensions import db
from server.review.models import ReviewDecision, ReviewSession
from tests.conftest import World
from tests.server.review.conftest import Scene, csrf_token, log_in, post_form


def _actions() -> list[tuple[str, str]]:
    return [(e.action, e.outcome.value) for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def test_pages_need_a_session(client, world: World) -> None:
    response = client.get("/review/")
    assert response.status_code == 302 and "/review/login" in response.headers["Location"]
    assert client.get(f"/review/media/{world.task.id}/stream").status_code == 401


def test_a_supervisor_logs_in_and_out(client, world: World) -> None:
    response = log_in(client, "m-sup")
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/review/")
    assert page.status_code == 200 and "工作队列" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert post_form(client, "/review/logout", {}).status_code == 303
    assert client.get("/review/").status_code == 302
    assert db.session.scalar(select(ReviewSession.end_reason)) == "logout"
    assert ("review.login", "success") in _actions() and ("review.logout", "success") in _actions()


def test_logging_off_ends_the_session_for_a_copied_cookie_too(app, client, world: World) -> None:
    log_in(client, "m-sup")
    stolen = app.test_client()
    stolen.set_cookie(app.config["SESSION_COOKIE_NAME"], client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value)
    assert stolen.get("/review/").status_code == 200
    post_form(client, "/review/logout", {})
    assert stolen.get("/review/").status_code == 302


def test_wrong_password_is_refused_and_recorded(client, world: World) -> None:
    response = log_in(client, "m-sup", "wrong-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)
    assert ("review.login", "failed") in _actions()
    assert db.session.scalar(select(func.count()).select_from(ReviewSession)) == 0


def test_failures_are_throttled_like_the_api(client, world: World) -> None:
    for _ in range(5):
        assert log_in(client, "m-sup", "wrong-password").status_code == 401
    refused = log_in(client, "m-sup")  # even the right password, while the budget is spent
    assert refused.status_code == 429
    assert "失败次数过多" in refused.get_data(as_text=True)


def test_an_inspector_is_told_clearly_that_the_app_is_not_for_them(client, world: World) -> None:
    response = log_in(client, "m-insp")
    assert response.status_code == 403
    assert "平板" in response.get_data(as_text=True)
    assert client.get("/review/").status_code == 302
    assert ("review.login", "denied") in _actions()


@pytest.mark.around_office_midnight
def test_an_idle_session_ends(app, client, world: World) -> None:
    log_in(client, "m-sup")
    assert client.get("/review/").status_code == 200
    session = db.session.scalar(select(ReviewSession))
    session.last_seen_at -= app.config["REVIEW_IDLE_TIMEOUT"] + timedelta(seconds=1)
    db.session.commit()
    response = client.get("/review/")
    assert response.status_code == 302 and "/review/login" in response.headers["Location"]
    db.session.expire_all()
    assert db.session.scalar(select(ReviewSession.end_reason)) == "idle"
    assert client.get("/review/").status_code == 302  # and it stays ended


def test_the_idle_timeout_is_configurable(world: World, tmp_path) -> None:
    from server import create_app

    app = create_app({"TESTING": True},
                     env={"INSPECT_ONCE_VAR": str(tmp_path), "INSPECT_ONCE_REVIEW_IDLE_MINUTES": "5"})
    assert app.config["REVIEW_IDLE_TIMEOUT"] == timedelta(minutes=5)
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_the_session_cookie_is_secure_outside_debug_and_tests(tmp_path) -> None:
    from server import create_app

    app = create_app(env={"INSPECT_ONCE_VAR": str(tmp_path), "SECRET_KEY": "s" * 40, "JWT_SIGNING_KEY": "j" * 40})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_forms_without_or_with_a_wrong_csrf_token_are_refused(client, scene: Scene) -> None:
    log_in(client, "m-sup")
    url = f"/review/inspections/{scene.joint.id}/decisions"
    for data in ({"kind": "approve"}, {"kind": "approve", "csrf_token": "forged"}):
        response = client.post(url, data=data)
        assert response.status_code == 400
        assert "CSRF" in response.get_data(as_text=True) or "表单" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ReviewDecision)) == 0
    # Log-on and log-off are forms too.
    assert client.post("/review/logout", data={}).status_code == 400
    assert client.get("/review/").status_code == 200


def test_a_token_from_another_session_does_not_work(app, client, scene: Scene) -> None:
    other = app.test_client()
    foreign = csrf_token(other)
    log_in(client, "m-sup")
    response = client.post(f"/review/inspections/{scene.joint.id}/decisions",
                           data={"kind": "approve", "csrf_token": foreign})
    assert response.status_code == 400


def test_the_json_api_needs_no_csrf_token(client, auth, world: World) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "m-sup", "password": "correct-horse-battery"})
    assert response.status_code == 200
    assert client.get("/api/v1/tasks/", headers=auth.headers("m-sup")).status_code == 200


def test_english_is_available(client, world: World) -> None:
    from flask_babel import refresh

    log_in(client, "m-sup")
    post_form(client, "/review/language", {"lang": "en", "next": "/review/"})
    refresh()  # the test's requests share one app context, where Flask-Babel keeps the locale it chose
    page = client.get("/review/").get_data(as_text=True)
    assert "Work queue" in page and "工作队列" not in page
    post_form(client, "/review/language", {"lang": "zh", "next": "/review/"})
    refresh()
    assert "工作队列" in client.get("/review/").get_data(as_text=True)


def test_the_compiled_translations_match_their_sources() -> None:
    """The .mo files are committed (a clean clone needs no compile step); they must say what the .po says."""
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    from server.review import TRANSLATIONS

    sources = list(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
    assert sources
    for po in sources:
        with po.open("rb") as handle:
            source = {m.id: m.string for m in read_po(handle) if m.id}
        with po.with_suffix(".mo").open("rb") as handle:
            compiled = {m.id: m.string for m in read_mo(handle) if m.id}
        assert compiled == source, f"{po.with_suffix('.mo')} is stale: pybabel compile -d server/review/translations"
        assert all(source.values()), f"untranslated texts in {po}"


def test_next_only_leads_within_the_app(client, world: World) -> None:
    response = client.post("/review/login", data={"username": "m-sup", "password": "correct-horse-battery",
                                                  "next": "https://evil.example/", "csrf_token": csrf_token(client)})
    assert response.headers["Location"].endswith("/review/")


UNSAFE_NEXT = [
    "/review/\r\nLocation: https://evil.example/",  # header splitting
    "/review/\n", "/review/\x00", "/review/\t", "/review/\x7f", "/review/\u2028",
    "https://evil.example/review/", "http:/review/", "javascript:alert(1)//review/",  # another scheme or host
    "//evil.example/review/", "///evil.example/review/",  # scheme-relative
    "/\\evil.example/review/", "/review/\\..\\..\\api", "\\\\evil.example\\review\\",  # backslashes
    "/review/../api/v1/openapi.json", "/review/%2e%2e/api/v1/", "/review/./../field/",  # leaves /review/ when resolved
    "/api/v1/openapi.json", "/reviewer/", "review/", "", "x" * 3000,
]


def test_an_unsafe_next_falls_back_to_the_queue_on_log_in(client, world: World) -> None:
    for target in UNSAFE_NEXT:
        client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
        shown = client.get("/review/login", query_string={"next": target})
        assert shown.status_code == 200, repr(target)
        response = client.post("/review/login", data={"username": "m-sup", "password": "correct-horse-battery",
                                                      "next": target, "csrf_token": csrf_token(client)})
        assert response.status_code == 303, (repr(target), response.status_code)
        assert response.headers["Location"] == "/review/", repr(target)


def test_the_crlf_log_in_link_of_the_report_does_not_break_the_answer(client, world: World) -> None:
    page = client.get("/review/login?next=/review/%0D%0ALocation:%20https://evil.example/")
    assert page.status_code == 200
    token = csrf_token(client)
    hidden = html.unescape(page.get_data(as_text=True).split('name="next" value="')[-1].split('"')[0])
    assert "\r\n" in hidden  # the form carries it back as the browser would
    response = client.post("/review/login", data={"username": "m-sup", "password": "correct-horse-battery",
                                                  "next": hidden, "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/review/"
    assert "evil" not in "".join(f"{k}: {v}" for k, v in response.headers.items())


def test_an_unsafe_next_falls_back_to_the_queue_on_a_language_switch(client, world: World) -> None:
    log_in(client, "m-sup")
    for target in UNSAFE_NEXT:
        response = post_form(client, "/review/language", {"lang": "en", "next": target})
        assert response.status_code == 303, (repr(target), response.status_code)
        assert response.headers["Location"] == "/review/", repr(target)


def test_a_safe_next_is_kept(client, scene: Scene) -> None:
    target = f"/review/inspections/{scene.joint.id}?media={scene.video.id}&t=2.0#player"
    response = client.post("/review/login", data={"username": "m-sup", "password": "correct-horse-battery",
                                                  "next": target, "csrf_token": csrf_token(client)})
    assert response.headers["Location"] == target
    response = post_form(client, "/review/language", {"lang": "zh", "next": "/review/?status=all&page=2"})
    assert response.headers["Location"] == "/review/?status=all&page=2"
