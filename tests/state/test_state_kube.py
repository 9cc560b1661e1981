"""The API client's watch stream reader: events split across chunks, bookmarks, 410 Gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gpufair.state import cache, kube, watch


class FakeResponse:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.released = False

    def stream(self, amount: int, decode_content: bool) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True


class FakeCore:
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.kwargs: dict[str, Any] = {}

    def list_node(self, **kwargs: Any) -> FakeResponse:
        self.kwargs = kwargs
        return self.response


def client_with(chunks: list[bytes]) -> tuple[kube.KubeClient, FakeCore, FakeResponse]:
    response = FakeResponse(chunks)
    client = kube.KubeClient.__new__(kube.KubeClient)
    core = FakeCore(response)
    client.core = core  # type: ignore[assignment]
    return client, core, response


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def test_events_split_across_chunks_are_reassembled() -> None:
    added = line("ADDED", {"metadata": {"name": "n1", "resourceVersion": "5"}})
    bookmark = line("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    client, core, response = client_with([added[:10], added[10:] + bookmark[:4], bookmark[4:]])
    events = list(client.watch(cache.Kind.NODE, resource_version="4", timeout_seconds=30))
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK"]
    assert events[0][1]["metadata"]["name"] == "n1"
    assert core.kwargs["watch"] is True
    assert core.kwargs["resource_version"] == "4"
    assert core.kwargs["allow_watch_bookmarks"] is True
    assert response.released


def test_an_expired_version_is_gone() -> None:
    expired = line("ERROR", {"kind": "Status", "code": 410, "message": "too old resource version"})
    client, _, response = client_with([expired])
    with pytest.raises(watch.GoneError, match="too old"):
        list(client.watch(cache.Kind.NODE, resource_version="1", timeout_seconds=30))
    assert response.released
