"""The case file download, the archive's public key, legal holds and evidence deletion."""
from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.archive import casefile, keys, retention
from server.archive import schemas as s
from server.auth.policy import Permission, current_principal, requires
from server.uploads import deletion

blp = Blueprint("archive", __name__, url_prefix="/api/v1",
                description="One case, one file: the signed case file, legal holds and retention")

_ZIP = {"200": {"content": {casefile.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                "description": "The case file: a BagIt package (RFC 8493) in a zip, streamed"}}


@blp.get("/inspections/<uuid:inspection_id>/case-file")
@requires(Permission.READ_TASKS)
@blp.doc(security=BEARER, responses=_ZIP)
@blp.response(200, content_type=casefile.MEDIA_TYPE, description="The case file (zip of a signed BagIt bag)")
@blp.alt_response(403, description="Inspectors and devices: the case file is for the offices")
@blp.alt_response(404, description="Not found, or a task the caller's department takes no part in")
def case_file(inspection_id: uuid.UUID) -> Any:
    """The inspection's whole case as one signed BagIt package (zip), made while it downloads; audited"""
    case = casefile.assemble(current_principal(), inspection_id, current_app.config["SETTINGS"].var_dir)
    # No request context needed while streaming: everything from the database was gathered above, and
    # a download abandoned half-way just closes the generator (and the store's file).
    return Response(casefile.stream_zip(case), mimetype=casefile.MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{case.name}.zip"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@blp.get("/archive-key")
@blp.arguments(s.ArchiveKeyQuery, location="query")
@blp.doc(responses={"200": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ArchiveKey"}},
    "application/x-pem-file": {"schema": {"type": "string"}}}}})
@blp.response(200, s.ArchiveKeySchema)
@blp.alt_response(422, description="Unknown format")
def archive_key(query: dict[str, Any]) -> Any:
    """The public half of the server's Ed25519 archive key, which signs every case file (no log-in)"""
    public = keys.private_key(current_app.config["SETTINGS"].var_dir).public_key()
    if query["format"] == "pem":
        return Response(keys.public_pem(public), mimetype="application/x-pem-file",
                        headers={"Content-Disposition": 'attachment; filename="inspect-once-archive-key.pem"'})
    return {"algorithm": "Ed25519", "public_key_pem": keys.public_pem(public), "fingerprint": keys.fingerprint(public)}


@blp.route("/legal-holds")
class Holds(MethodView):
    @requires(Permission.READ_AUDIT)
    @blp.doc(security=BEARER)
    @blp.arguments(s.HoldQuery, location="query")
    @blp.response(200, s.HoldList)
    @blp.alt_response(422, description="Invalid filter")
    def get(self, query: dict[str, Any]) -> Any:
        """Legal holds of your department (all, for an administrator), newest first"""
        return {"items": retention.list_holds(current_principal(), object_id=query["object_id"],
                                              active=query["active"], limit=query["limit"])}

    @requires(Permission.READ_AUDIT)
    @blp.doc(security=BEARER)
    @blp.arguments(s.PlaceHold)
    @blp.response(201, s.HoldSchema)
    @blp.alt_response(403, description="Only a head or an administrator places holds")
    @blp.alt_response(404, description="No such inspection or file in your departments' cases")
    @blp.alt_response(422, description="Invalid body")
    def post(self, body: dict[str, Any]) -> Any:
        """Place a legal hold on an inspection (its whole case) or one evidence file, with a reason; audited"""
        return retention.place_hold(current_principal(), body["object_type"], body["object_id"], body["reason"])


@blp.route("/legal-holds/<uuid:hold_id>")
class Hold(MethodView):
    @requires(Permission.READ_AUDIT)
    @blp.doc(security=BEARER)
    @blp.response(200, s.HoldSchema)
    @blp.alt_response(404, description="No such hold in your departments")
    def get(self, hold_id: uuid.UUID) -> Any:
        """One legal hold, lifted or not"""
        return retention.get_hold(current_principal(), hold_id)


@blp.route("/legal-holds/<uuid:hold_id>/lift")
class Lift(MethodView):
    @requires(Permission.READ_AUDIT)
    @blp.doc(security=BEARER)
    @blp.arguments(s.LiftHold)
    @blp.response(200, s.HoldSchema)
    @blp.alt_response(403, description="Only a head or an administrator lifts holds")
    @blp.alt_response(404, description="No such hold in your departments")
    @blp.alt_response(409, description="hold-already-lifted")
    @blp.alt_response(422, description="Invalid body")
    def post(self, body: dict[str, Any], hold_id: uuid.UUID) -> Any:
        """Lift a legal hold, with a reason; audited (the hold stays on record)"""
        return retention.lift_hold(current_principal(), hold_id, body["reason"])


@blp.route("/media/<uuid:media_id>/deletion")
class Deletion(MethodView):
    @requires(Permission.READ_MEDIA)
    @blp.doc(security=BEARER)
    @blp.arguments(s.DeleteEvidence)
    @blp.response(204)
    @blp.alt_response(403, description="Only a head or an administrator of the file's department")
    @blp.alt_response(404, description="No such file in your department")
    @blp.alt_response(409, description="under-legal-hold or under-retention: refused, and the attempt audited")
    @blp.alt_response(422, description="Invalid body")
    def post(self, body: dict[str, Any], media_id: uuid.UUID) -> Any:
        """Delete an evidence file whose retention has run out and which no hold covers; audited"""
        deletion.delete_media(current_principal(), media_id, body["reason"], path="api")
        return Response(status=204)
