"""Request decoding and answer encoding shared by the verb routes."""

from __future__ import annotations

from typing import TypeVar

import fastapi
import pydantic

from gpufair.api import extender_wire
from gpufair.extender import runtime

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

JSON = "application/json"


class BadRequestError(Exception):
    """Raised while decoding; answered with HTTP 400 and the message as the body."""

    def __init__(self, response: fastapi.Response) -> None:
        super().__init__("bad request")
        self.response = response


async def decode(
    request: fastapi.Request, model: type[_Model], *, verb: str, rt: runtime.Runtime
) -> _Model:
    """The request body as ``model``, or :class:`BadRequestError` (HTTP 400, specific text)."""
    try:
        return extender_wire.decode(model, await request.body())
    except extender_wire.WireFormatError as exc:
        rt.metrics.errors.labels(verb, "bad_request").inc()
        raise BadRequestError(
            fastapi.Response(content=f"{exc}\n", status_code=400, media_type="text/plain")
        ) from None


def answer(body: bytes) -> fastapi.Response:
    return fastapi.Response(content=body, media_type=JSON)


def bad_request_handler(_: fastapi.Request, exc: Exception) -> fastapi.Response:
    assert isinstance(exc, BadRequestError)
    return exc.response
