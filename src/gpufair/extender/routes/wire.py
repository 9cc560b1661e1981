"""Request decoding, answer encoding and the route class shared by the verb routes."""

from __future__ import annotations

from typing import TypeVar, cast

import fastapi
import fastapi.routing
import pydantic
import starlette.responses
import starlette.types

from gpufair.api import extender_wire
from gpufair.extender import runtime

_Model = TypeVar("_Model", bound=pydantic.BaseModel)

JSON = "application/json"


class BadRequestError(Exception):
    """Raised while decoding; answered with HTTP 400 and the message as the body."""

    def __init__(self, response: fastapi.Response) -> None:
        super().__init__("bad request")
        self.response = response


class VerbRoute(fastapi.routing.APIRoute):
    """A verb's route: listed in OpenAPI and matched like any FastAPI route, but served by
    calling its endpoint with the request directly, without FastAPI's per-request dependency
    resolution and wrappers (about 0.1 ms a call at kube-scheduler's body sizes, three calls a
    pod). The endpoint takes the :class:`fastapi.Request` only and returns the whole Response;
    errors still reach the app's exception handlers.
    """

    async def handle(
        self,
        scope: starlette.types.Scope,
        receive: starlette.types.Receive,
        send: starlette.types.Send,
    ) -> None:
        response: starlette.responses.Response
        methods = self.methods or set()
        if scope["method"] in methods:
            response = await self.endpoint(fastapi.Request(scope, receive))
        else:
            response = starlette.responses.PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": ", ".join(sorted(methods))}
            )
        await response(scope, receive, send)


def runtime_of(request: fastapi.Request) -> runtime.Runtime:
    """The app's runtime (what ``RuntimeDep`` gives routes served by FastAPI's machinery)."""
    rt: runtime.Runtime = request.app.state.runtime
    return rt


_last_decoded: dict[type[pydantic.BaseModel], tuple[bytes, pydantic.BaseModel]] = {}
"""Per wire type, the last body decoded and its (frozen) model."""

_args = extender_wire.ArgsCodec()


async def decode(
    request: fastapi.Request, model: type[_Model], *, verb: str, rt: runtime.Runtime
) -> _Model:
    """The request body as ``model``, or :class:`BadRequestError` (HTTP 400, specific text).

    kube-scheduler sends prioritize the very bytes it sent filter when every candidate passed
    (the same pod, the same names), so a body equal to the last one of its type is not parsed
    again: at 5,000 nodes that is a 50 kB comparison instead of a 50 kB parse. Otherwise its
    names are usually those filter answered, which are not decoded again either
    (:class:`gpufair.api.extender_wire.ArgsCodec`).
    """
    body = await request.body()
    last = _last_decoded.get(model)
    if last is not None and last[0] == body:
        return cast(_Model, last[1])
    try:
        if model is extender_wire.ExtenderArgs:
            decoded = cast(_Model, _args.decode(body))
        else:
            decoded = extender_wire.decode(model, body)
    except extender_wire.WireFormatError as exc:
        rt.metrics.errors.labels(verb, "bad_request").inc()
        raise BadRequestError(
            fastapi.Response(content=f"{exc}\n", status_code=400, media_type="text/plain")
        ) from None
    _last_decoded[model] = (body, decoded)
    return decoded


def answer(body: bytes) -> fastapi.Response:
    return fastapi.Response(content=body, media_type=JSON)


def answer_filter(result: extender_wire.ExtenderFilterResult) -> fastapi.Response:
    """The filter answer; its names are remembered for decoding the prioritize call."""
    return answer(_args.encode_filter_result(result))


def bad_request_handler(_: fastapi.Request, exc: Exception) -> fastapi.Response:
    assert isinstance(exc, BadRequestError)
    return exc.response
