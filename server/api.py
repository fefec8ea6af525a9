"""The flask-smorest Api, answering every error as problem+json."""
from __future__ import annotations

import threading
from collections.abc import Callable
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
    """flask-smorest's Api, whose OpenAPI document is built when it is first read.

    Documenting the views (apispec resolving every schema) was most of the cost of building an app, paid by
    every gunicorn worker at start and by every test; the document is read only by ``/api/v1/openapi.json``,
    the docs page and the tests that walk it. The blueprints are registered with Flask at once as before.
    """

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._documenting = threading.RLock()  # a threaded worker's first two reads document the views once
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def spec(self) -> Any:
        with self._documenting:
            pending: list[Callable[[], None]] = self.__dict__.get("_pending_docs", [])
            while pending:
                pending.pop(0)()
        return self.__dict__.get("_spec")

    @spec.setter
    def spec(self, value: Any) -> None:
        # A new document (init_app of another app) drops what was still to be documented for the previous one.
        self.__dict__["_spec"] = value
        self.__dict__["_pending_docs"] = []

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        """As flask-smorest's, with the documentation of the blueprint's views deferred to the first read."""
        name = options.get("name", blp.name)
        app = self._app
        app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        app.register_blueprint(blp, **options)

        def document() -> None:
            spec = self.__dict__["_spec"]
            blp.register_views_in_doc(self, app, spec, name=name, parameters=parameters)
            spec.tag({"name": name, "description": blp.description})

        self.__dict__["_pending_docs"].append(document)

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
