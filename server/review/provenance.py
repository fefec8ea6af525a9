"""A file's capture provenance in words on the inspection page (``server.provenance``):
「由执法终端 SCJG-TAB1 签名（第 17 号采集），签名有效，采集链完整」, or what failed."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import gettext as _

from server.provenance import service as provenance


def _device(kind: str | None) -> str:
    return {"tablet": _("tablet"), "dock": _("docking station"), "bodycam": _("body camera")}.get(kind or "",
                                                                                               _("device"))


def provenance_words(media: Any) -> str | None:
    """The words for one checked file, or None while it is being verified."""
    found = provenance.standing(media)
    if found is None:
        return None
    reasons = found.reasons
    if found.device_id is None:
        if "unsigned" in reasons:
            legacy = (reasons["unsigned"].get("details") or {}).get("legacy")
            return _("Not signed at capture (device without a signing key)") if legacy else _("Not signed at capture")
        if "bad-signature" in reasons:
            return _("Capture signature not valid")
        if "manifest-replayed" in reasons:
            return _("Capture manifest already used for another file")
        return _("Capture manifest not accepted") if reasons else None
    said = [_("Signed by %(device)s %(id)s (capture no. %(counter)s)", device=_device(found.device_kind),
              id=found.device_id, counter=found.counter)]
    said.append(_("key revoked before the file arrived") if "revoked-key" in reasons else _("signature valid"))
    if "chain-gap" in reasons:
        details = reasons["chain-gap"].get("details") or {}
        missing = "、".join(str(n) for n in details.get("missing") or [])
        said.append(_("capture chain incomplete: no. %(missing)s missing", missing=missing) if missing
                    else _("capture chain broken"))
    else:
        said.append(_("capture chain complete"))
    if "manifest-mismatch" in reasons:
        said.append(_("the manifest does not match the file"))
    return _(", ").join(said)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["provenance_words"] = provenance_words
