"""What the planning modules share: a refusal naming one field, and how the shared plans are read."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from server.auth.policy import Permission, Principal, authorize_object
from server.errors import Problem
from server.loading import load_authorized
from server.pagination import Page, keyset_page

T = TypeVar("T")


def field_error(field: str, message: str, status: int = 422, slug: str = "validation-failed") -> Problem:
    """A refusal of one field of the request, its message under ``errors[field]``."""
    return Problem(status, slug, message, errors={field: [message]})


@dataclass(frozen=True)
class Owned:
    """Something of a department, for authorize_object before the object exists."""

    department_id: uuid.UUID


def get_shared(principal: Principal, model: type[T], object_id: uuid.UUID, what: str) -> T:
    """Plans, joint plans and draws are read by every department's office: merging needs them."""
    return load_authorized(principal, model, object_id, Permission.READ_PLANS, not_found=f"{what}不存在")


def shared_page(principal: Principal, query: Any, model: Any, limit: int, after: str | None) -> Page[Any]:
    """A page of plans, joint plans or draws, for anyone who reads plans."""
    authorize_object(principal, Permission.READ_PLANS, None)
    return keyset_page(query, model.id, limit, after)
