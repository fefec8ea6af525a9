"""Review aids: thumbnail and contact sheet."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from media import MediaError, make_contact_sheet, make_thumbnail

from .conftest import MediaFactory


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_thumbnail_of_a_video(media: MediaFactory) -> None:
    picture = make_thumbnail(media.clean_video(), max_side=160, at=2.0)

    assert decode(picture.jpeg).shape == (120, 160, 3)
    assert (picture.width, picture.height) == (160, 120)
    assert picture.times == (2.0,)  # a keyframe every second


def test_thumbnail_of_a_photo_written_to_a_file(media: MediaFactory) -> None:
    picture = make_thumbnail(media.photo("thumb-source.png"))
    target = picture.save(media.root / "thumb.jpg")

    assert target.read_bytes()[:3] == b"\xff\xd8\xff"
    assert decode(picture.jpeg).shape == (240, 320, 3)


def test_contact_sheet_of_keyframes_at_a_fixed_interval(media: MediaFactory) -> None:
    sheet = make_contact_sheet(media.clean_video(), interval=1.0, columns=2, tile_width=120)

    assert sheet.times == (0.0, 1.0, 2.0, 3.0)
    image = decode(sheet.jpeg)
    gap = 4
    assert image.shape == (2 * 90 + 3 * gap, 2 * 120 + 3 * gap, 3)


def test_contact_sheet_is_capped(media: MediaFactory) -> None:
    sheet = make_contact_sheet(media.clean_video(), interval=0.2, max_tiles=3)

    assert len(sheet.times) <= 3


def test_contact_sheet_of_a_photo(media: MediaFactory) -> None:
    sheet = make_contact_sheet(media.photo("sheet-source.jpg"), tile_width=100)

    assert sheet.times == (0.0,) and decode(sheet.jpeg).shape == (75 + 8, 100 + 8, 3)


def test_no_picture_in_not_media(media: MediaFactory) -> None:
    with pytest.raises(MediaError):
        make_thumbnail(media.text_named_mp4())
    with pytest.raises(MediaError):
        make_contact_sheet(media.audio_only())
