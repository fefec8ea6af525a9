"""The directory: departments, check items, enterprises, people, certificates and devices."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Teach the audit log who owns the directory's objects."""
    from server.audit.service import register_object_model
    from server.directory.models import Certificate, Device, User

    for object_type, model in (("user", User), ("certificate", Certificate), ("device", Device)):
        register_object_model(object_type, model)
