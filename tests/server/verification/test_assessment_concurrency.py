"""Two assessments of one inspection at once (a push and a finished verification, on two worker threads)
must both succeed and leave one link per file and one set of flags, on SQLite and on PostgreSQL."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from server.db_types import utcnow
from server.extensions import db
from server.verification import inspections
from server.verification.models import InspectionAssessment, InspectionFlag, InspectionMedia
from tests.media.conftest import media  # noqa: F401 - the generated-media fixture
from tests.server.verification.test_inspection_flags import Visit


def test_overlapping_assessments_of_one_inspection_both_succeed(app, client, auth, world, media) -> None:  # noqa: F811
    visit = Visit(client, auth, world, utcnow().replace(microsecond=0) - timedelta(hours=1), 15)
    visit.photo(media.photo("team.jpg", certificates=["CERT-M-001"]))
    inspection_id = uuid.UUID(visit.id)
    db.session.remove()

    first_done = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with app.app_context():
            try:
                inspections.assess_inspection(inspection_id)
                first_done.set()
                # Hold the transaction open while the second assessment runs into it.
                threading.Event().wait(0.5)
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                first_done.set()
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    def second() -> None:
        first_done.wait(10)
        with app.app_context():
            try:
                inspections.assess_inspection(inspection_id)
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors

    links = db.session.scalar(select(func.count()).select_from(InspectionMedia)
                              .where(InspectionMedia.inspection_id == inspection_id))
    assert links == 1
    assert db.session.get(InspectionAssessment, inspection_id) is not None
    codes = list(db.session.scalars(select(InspectionFlag.code).where(InspectionFlag.inspection_id == inspection_id)))
    assert len(codes) == len(set(codes)), codes  # one set of flags, not two
