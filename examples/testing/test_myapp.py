"""Tests for myapp over real HTTPS: the framework's pytest fixtures serve it on a loopback port.

framework_server runs the app (startup hooks first) with a certificate from a throwaway CA;
framework_client is a Client that trusts that CA alone. Async tests need pytest-asyncio.
"""

import asyncio
import logging

import pytest
from myapp import app, state

from framework import ClientError
from framework.testing import eventually, serve_app


@pytest.fixture
def framework_app():
    return app


@pytest.mark.asyncio
async def test_json_route(framework_client):
    response = await framework_client.get("/items/1")
    assert response.status == 200
    assert response.json() == {"id": 1, "name": "tea"}

    response = await framework_client.post("/items", json={"name": "coffee"})
    assert response.status == 201
    assert response.json()["name"] == "coffee"

    response = await framework_client.get("/items/99")
    assert response.status == 404


@pytest.mark.asyncio
async def test_streaming_route_streams(framework_server):
    # The feed runs for 10 s; its first lines arrive at once, and leaving early ends it.
    ended = state["feeds_ended"]
    async with framework_server.client(timeout=5) as client:
        async with client.stream("GET", "/feed") as response:
            lines = []
            async for chunk in response.aiter_bytes():
                lines += chunk.decode().splitlines()
                if len(lines) >= 3:
                    break
    assert lines[:3] == ["event 0", "event 1", "event 2"]
    # The server saw the client go and closed the generator (its finally: ran).
    await eventually(lambda: state["feeds_ended"] == ended + 1)


@pytest.mark.asyncio
async def test_lifespan_hooks_run_around_the_server(framework_ca):
    async with serve_app(app, ca=framework_ca) as server:
        assert state["items"] is not None  # startup ran before the first request
        async with server.client() as client:
            assert (await client.get("/items/1")).status == 200
    assert state["closed"]  # shutdown ran once the server stopped


@pytest.mark.asyncio
@pytest.mark.framework_app(app, client_cert="required")
async def test_mutual_tls(framework_server):
    async with framework_server.client() as client:  # presents a client certificate
        response = await client.get("/whoami")
        assert response.json() == {"client": "test-client"}
    async with framework_server.client(cert=False) as client:
        with pytest.raises(ClientError):
            await client.get("/whoami")


@pytest.mark.asyncio
async def test_handler_error_is_a_500_and_visible(framework_server, framework_client, caplog):
    response = await framework_client.get("/crash")
    assert response.status == 500
    [error] = framework_server.exceptions
    assert isinstance(error, RuntimeError)
    assert "the store is on fire" in caplog.text
    assert (await framework_client.get("/items/1")).status == 200  # still serving


def test_without_pytest_asyncio(framework_server):
    async def main():
        async with framework_server.client() as client:
            response = await client.get("/items/1")
            return response.status, response.json()

    assert asyncio.run(main()) == (200, {"id": 1, "name": "tea"})


def test_server_logs_reach_caplog(framework_server, caplog):
    caplog.set_level(logging.ERROR, logger="framework")

    async def main():
        async with framework_server.client() as client:
            return (await client.get("/crash")).status

    assert asyncio.run(main()) == 500
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
