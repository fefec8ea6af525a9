"""Evidence capture: hashed while copied into the vault, named by the hash, never by the user's file name."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from field_client.engine import HASH_BLOCK, FieldClient, LocalError
from tests.field_client.conftest import MY_ITEM, TASK_ID


def test_attach_hashes_streams_and_stores_by_sha256(tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    video = tmp_path / "camera" / "VID_0001.mp4"
    video.parent.mkdir()
    content = os.urandom(HASH_BLOCK * 2 + 12345)  # more than one block
    video.write_bytes(content)
    os.utime(video, (1767578400, 1767578400))  # 2026-01-05T02:00:00Z

    media_id = client.attach(inspection, video, "scene")
    media = client.entity(media_id)
    assert media is not None
    digest = hashlib.sha256(content).hexdigest()
    assert media["sha256"] == digest and media["size"] == len(content)
    assert media["content_type"] == "video/mp4" and media["file_name"] == "VID_0001.mp4"
    assert media["device_id"] == "SCJG-TAB1" and media["proves"] == "scene"
    assert media["capture_start"].startswith("2026-01-05") and media["inspection_id"] == inspection
    assert client.store.vault_path(digest).read_bytes() == content
    assert sorted(p.name for p in client.store.vault_dir.iterdir()) == [digest]
    (mutation,) = [m for m in client.store.mutations() if m.entity == "media"]
    assert set(mutation.fields) == {"inspection_id", "sha256", "size", "content_type", "file_name", "capture_start",
                                    "capture_end", "device_id", "proves"}
    # Changing the original afterwards does not touch the evidence.
    video.write_bytes(b"tampered")
    assert hashlib.sha256(client.store.vault_path(digest).read_bytes()).hexdigest() == digest
    # It can be cited by a finding.
    finding = client.record_finding(inspection, MY_ITEM, "non_compliant", evidence=[media_id])
    assert client.entity(finding)["evidence"] == [media_id]  # type: ignore[index]
    assert client.status().uploads_waiting == 1


@pytest.mark.parametrize("name", ["..;rm -rf ~.jpg", "营业执照（正本）.jpg", "a\\..\\..\\b.png", " .hidden"])
def test_the_users_file_name_is_only_metadata(tmp_path: Path, offline_tablet: Callable[..., FieldClient],
                                              name: str) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    folder = tmp_path / "in"
    folder.mkdir()
    source = folder / name
    source.write_bytes(name.encode())
    media = client.entity(client.attach(inspection, source, "certificate"))
    assert media is not None
    assert "/" not in media["file_name"]
    digest = hashlib.sha256(name.encode()).hexdigest()
    assert [p.name for p in client.store.vault_dir.iterdir()] == [digest]
    assert not any(p.name == source.name for p in tmp_path.rglob("*") if p != source)


def test_the_same_photo_twice_is_one_file_and_two_records(tmp_path: Path,
                                                         offline_tablet: Callable[..., FieldClient]) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(b"\xff\xd8 certificate")
    first = client.attach(inspection, photo, "certificate")
    second = client.attach(inspection, photo, "scene")
    assert first != second
    assert len(list(client.store.vault_dir.iterdir())) == 1
    assert len(client.store.vault_entries()) == 1


def test_attach_refuses_what_is_not_a_file(tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    with pytest.raises(LocalError, match="找不到文件"):
        client.attach(inspection, tmp_path / "missing.jpg", "scene")
    with pytest.raises(LocalError, match="找不到文件"):
        client.attach(inspection, tmp_path, "scene")
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    with pytest.raises(LocalError, match="证据用途"):
        client.attach(inspection, photo, "selfie")
    assert [m.entity for m in client.store.mutations()] == ["inspection"]
