"""Every list on every review page is bounded: a record with thousands of signatures, findings, files,
flags, conflicts, decisions and audit entries still gives a page of bounded size that says how many
there are and pages through them."""
from __future__ import annotations

import re

from server.review import service
from tests.server.review.conftest import (
    CONFLICTS,
    DECISIONS,
    FILES,
    FINDINGS,
    FLAGS,
    PAGE_BOUND,
    SIGNATURES,
    Crowded,
    Scene,
)


def _count(page: str, testid: str) -> int:
    found = re.search(rf'data-testid="{testid}"[^>]*data-total="(\d+)"', page)
    assert found, f"no {testid} on the page"
    return int(found.group(1))


def test_a_crowded_inspection_page_is_bounded_and_says_how_many(review_as, crowded: Crowded) -> None:
    scene = crowded.scene
    client = review_as("m-sup")
    # No bound on time here (a shared CI machine is no stopwatch): the page's size does not grow with the record.
    response = client.get(f"/review/inspections/{scene.joint.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert len(response.data) < PAGE_BOUND, len(response.data)
    assert _count(page, "signatures") == SIGNATURES
    assert _count(page, "findings") == FINDINGS + 2
    assert _count(page, "evidence") == FILES + 1
    assert _count(page, "flags") == FLAGS + 1
    assert _count(page, "conflicts") == CONFLICTS
    assert _count(page, "decisions") == DECISIONS
    assert page.count('data-testid="signature"') <= service.SIGNATURES_PAGE
    assert page.count('data-testid="finding"') <= service.FINDINGS_PAGE
    assert page.count('data-testid="media-row"') <= service.EVIDENCE_PAGE
    assert page.count('data-testid="flag"') <= service.FLAGS_PAGE
    assert page.count('data-testid="conflict"') <= service.CONFLICTS_PAGE
    assert page.count('data-kind="return"') <= service.DECISIONS_PAGE
    assert page.count('<tr data-action=') <= service.AUDIT_PAGE
    assert page.count('class="segment"') <= service.TIMELINE_CLIPS
    assert page.count('class="mark ') <= service.TIMELINE_MARKS
    events = page.split('<details class="marks">')[1].split("</details>")[0]
    assert 0 < events.count('<li data-kind=') <= service.TIMELINE_MARKS
    assert 'data-testid="timeline-left-out"' in page and 'data-testid="timeline-clips"' in page
    assert page.count('data-testid="certificate-sighting"') <= service.SIGHTINGS_SHOWN
    assert page.count('data-testid="merged-finding"') <= service.JOINT_SHOWN
    assert "另有" in page  # the summaries of what is not shown
    for testid in ("signatures", "findings", "evidence", "flags", "conflicts", "decisions", "audit"):
        assert f'data-testid="{testid}-pages"' in page, testid


def test_each_list_pages_on_by_itself(review_as, crowded: Crowded) -> None:
    scene = crowded.scene
    client = review_as("m-sup")
    base = f"/review/inspections/{scene.joint.id}"
    first = client.get(base).get_data(as_text=True)
    link = re.search(r'href="([^"]*signatures_page=2[^"]*)"', first)
    assert link, "no link to the second page of signatures"
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    names = lambda page: re.findall(r'data-testid="signature">[^<]*?(见证人\d+)', page)  # noqa: E731
    assert names(first) and names(second) and not set(names(first)) & set(names(second))
    last = client.get(f"{base}?signatures_page=999999").get_data(as_text=True)  # past the end: the last page
    assert "见证人05999" in last or names(last)
    # The older audit entries, a keyset page at a time.
    older = re.search(r'href="([^"]*audit_before=(\d+)[^"]*)"', first)
    assert older
    page = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    seqs = [int(s) for s in re.findall(r'<tr data-action="[^"]+"><td>(\d+)</td>', page)]
    assert seqs and max(seqs) < int(older.group(2))
    for bad in ("signatures_page=0", "findings_page=x", "evidence_page=-1", "audit_before=abc", "flags_page=1e9"):
        assert client.get(f"{base}?{bad}").status_code == 400, bad


def test_the_player_finds_a_file_not_on_the_evidence_page(review_as, crowded: Crowded) -> None:
    scene = crowded.scene
    far = crowded.files[-1]  # an odd index: a recording segment, on the last page of the evidence
    page = review_as("m-sup").get(f"/review/inspections/{scene.joint.id}?media={far}&t=0.5").get_data(as_text=True)
    assert f'src="/review/media/{far}/stream#t=0.5"' in page


def test_the_approvals_page_is_paged(review_as, scene: Scene, monkeypatch) -> None:
    from tests.server.review.test_decisions import _pending_task

    monkeypatch.setattr(service, "APPROVALS_PAGE", 2)
    tasks = [_pending_task(scene, n) for n in range(5)]
    client = review_as("m-head")
    first = client.get("/review/approvals").get_data(as_text=True)
    assert first.count('data-testid="approval-row"') == 2 and _count(first, "approvals") == len(tasks)
    third = client.get("/review/approvals?page=3").get_data(as_text=True)
    assert third.count('data-testid="approval-row"') == 1
    assert client.get("/review/approvals?page=nope").status_code == 400


def test_queue_badges_are_bounded_whatever_the_flags(review_as, crowded: Crowded) -> None:
    page = review_as("m-sup").get("/review/").get_data(as_text=True)
    row = next(r for r in page.split('<tr data-testid="queue-row">')[1:] if str(crowded.scene.joint.id) in r)
    assert row.count('class="flag ') == 1  # one badge for the one code, with its count
    assert f"{FLAGS + 1}" in row
    assert len(page.encode()) < 100_000
