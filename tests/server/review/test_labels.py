"""Review pages speak words, not codes: what a file proves, audit actions, outcomes and details, signer
roles, measures, timeline marks, flags (in English too), and every text of the app is translated."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

from flask.testing import FlaskClient

from server.extensions import db
from server.sync.models import SyncConflict
from tests.server.review.conftest import Scene, entity, post_form, stored_media


class _Visible(HTMLParser):
    """The text a reader sees: character data outside scripts, styles and SVG titles' markup."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    return " ".join(parser.parts)


def _furnish(scene: Scene, clip: bytes) -> None:
    """A certificate photo, a witness's signature and a merge conflict on the joint record."""
    world, joint = scene.world, scene.joint
    photo = stored_media(clip[:2000], world.task, world.market.id, name="IMG_0001.jpg",
                         capture_start=scene.start + timedelta(seconds=1), content_type="image/jpeg")
    entity("media", world.task, world.market.id, world.people["m-insp"].id, entity_id=photo.id, inspection_id=joint.id,
           fields={"inspection_id": str(joint.id), "sha256": photo.sha256, "size": photo.size, "proves": "certificate",
                   "content_type": "image/jpeg", "file_name": "IMG_0001.jpg"})
    entity("signature", world.task, world.market.id, world.people["m-insp"].id, inspection_id=joint.id,
           fields={"inspection_id": str(joint.id), "signer_role": "witness", "signer_name": "李见证",
                   "signed_at": scene.start.isoformat()})
    db.session.add(SyncConflict(entity_id=joint.id, task_id=world.task.id, field="place", kept_value="一号车间",
                                kept_hlc="a", lost_value="二号车间", lost_hlc="b", mutation_id=uuid.uuid4(),
                                detected_at=scene.start))
    db.session.commit()


def _english(client: FlaskClient) -> None:
    from flask_babel import refresh

    post_form(client, "/review/language", {"lang": "en", "next": "/review/"})
    refresh()  # the test's requests share one app context, where Flask-Babel keeps the locale it chose


def test_the_chinese_page_shows_words_for_every_code(review_as, scene: Scene, clip: bytes) -> None:
    _furnish(scene, clip)
    client = review_as("m-sup")
    client.get(f"/review/media/{scene.video.id}/stream", headers={"Range": "bytes=0-99"})
    client.get(f"/review/inspections/{scene.ecology_only.id}")  # refused: on the record as denied
    page = client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True)
    text = visible(page)
    for raw in ("scene", "certificate", "signature", "witness", "inspection.view", "media.stream", "success",
                "denied", '{"', "range", "content_range", "place:", "· covered", "· finding", "· gap", "· flag"):
        assert raw not in text, raw
    for words in ("亮证", "见证人", "查看检查记录", "观看或下载证据文件", "成功", "请求的字节",
                  "206（已发送文件的一部分）", "地点"):
        assert words in text, words
    coercive = client.get(f"/review/inspections/{scene.coercive.id}").get_data(as_text=True)
    assert "seizure" not in visible(coercive) and "<b>查封</b>" in coercive


def test_the_english_page_shows_english_words_for_flags_and_codes(review_as, scene: Scene, clip: bytes) -> None:
    _furnish(scene, clip)
    client = review_as("m-sup")
    _english(client)
    page = client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True)
    text = visible(page)
    assert re.search(r'data-flag="lens-covered"><b>Lens covered</b>', page)
    for raw in ("lens-covered", "inspection.view", "success", "witness", '{"'):
        assert raw not in text, raw
    assert "Witness" in text and "Viewed the record" in text and "Done" in text
    queue = client.get("/review/?status=all").get_data(as_text=True)
    counts = queue.split('data-testid="flag-counts"')[1].split("</ul>")[0]
    assert "Lens covered" in counts and "Coercive measures without body camera footage" in counts
    assert "镜头被遮挡" not in counts
    options = queue.split('name="flag"')[1].split("</select>")[0]
    assert "Coercive measures without body camera footage" in options and "未见亮证" not in options


def test_every_flag_has_an_english_name_and_every_audit_action_words() -> None:
    from server.review.labels import ACTIONS, FLAG_ENGLISH
    from server.review.models import DecisionKind
    from server.verification.flags import FLAG_LABELS

    assert set(FLAG_ENGLISH) == set(FLAG_LABELS)
    sources = Path(__file__).resolve().parents[3] / "server"
    literal = re.compile(r'(?:audit|record)\(\s*"([a-z_]+\.[a-z_.]+)"')
    written = {action for path in sources.rglob("*.py") for action in literal.findall(path.read_text())}
    written |= {f"review.{kind.value}" for kind in DecisionKind}
    written |= {"frequency_override.approve", "frequency_override.reject"}  # an f-string in planning
    assert written and written <= set(ACTIONS), sorted(written - set(ACTIONS))


def test_every_text_of_the_app_is_in_the_catalogue() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    from server.review import TRANSLATIONS

    root = TRANSLATIONS.parent
    with (root / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "lazy_gettext": None, "_l": None}
    used = {message for _, _, message, _, _ in extract_from_dir(str(root), method_map, options_map, keywords=keywords)}
    with (TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = {m.id: m.string for m in read_po(handle) if m.id}
    assert used - set(catalogue) == set(), "texts missing from messages.po"
    assert set(catalogue) - used == set(), "texts in messages.po no page uses"
