"""SubjectAccessReview's subject: the uid and extra it names reach the authorizer, as upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import auth, reviews
from nestlab.api import resources as r
from nestlab.api.rbacrules import Attributes
from nestlab.api.status import ApiError

ADMIN = auth.User("admin", frozenset({"system:masters"}))


class Asked:
    """An authorizer that records whom it was asked about."""

    def __init__(self) -> None:
        self.users: list[auth.User] = []

    async def allowed_attrs(self, user: auth.User, attrs: Attributes) -> tuple[bool, str]:
        self.users.append(user)
        return True, ""


def review(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}, **spec}}


def test_the_subjects_uid_and_extra_reach_the_authorizer() -> None:
    asked = Asked()
    spec = {"user": "alice", "groups": ["devs"], "uid": "u-1", "extra": {"scopes": ["view", "edit"]}}
    answer = asyncio.run(
        reviews.answer(asked, r.SUBJECT_ACCESS_REVIEWS, ADMIN, "", review(spec))  # type: ignore[arg-type]
    )
    assert answer["status"] == {"allowed": True}
    assert asked.users == [
        auth.User("alice", frozenset({"devs"}), uid="u-1", extra={"scopes": ("view", "edit")})
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"user": "alice", "uid": 7}, "spec.uid"), ({"user": "alice", "extra": {"k": "v"}}, "spec.extra")],
)
def test_a_malformed_uid_or_extra_is_invalid(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as refused:
        asyncio.run(
            reviews.answer(Asked(), r.SUBJECT_ACCESS_REVIEWS, ADMIN, "", review(spec))  # type: ignore[arg-type]
        )
    assert refused.value.code == 422
    assert field in refused.value.message
