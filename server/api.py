"""The flask-smorest Api, answering every error as problem+json."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from werkzeug.exceptions import HTTPException

from server.errors import handle_http_exception
from server.jsonbody import JSONBodyParser


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (documentation only)."""

    type = ma.fields.String(metadata={"description": "Stable error identifier, e.g. /problems/validation-failed"})
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                            metadata={"description": "Field name -> messages"})


class Api(_Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:  # type: ignore[override]
        return handle_http_exception(error)


class StrictParser(JSONBodyParser):
    # An unknown query parameter is refused too: a typo such as ``?curser=``
    # would otherwise silently restart a tablet's pull from the beginning.
    DEFAULT_UNKNOWN_BY_LOCATION = {**JSONBodyParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": ma.RAISE, "querystring": ma.RAISE}


class Blueprint(_Blueprint):
    ARGUMENTS_PARSER = StrictParser()


api = Api()

BEARER = [{"bearerAuth": []}]


def document_security(spec_api: Api) -> None:
    spec_api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
