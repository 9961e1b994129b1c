"""A small JSON API: typed path and query parameters, a typed JSON body, errors as JSON.

Run it:   python -m framework serve examples.json_api:app
Poke it:  CA="$(python -m framework certs dev-ca)"
          curl --cacert "$CA" https://localhost:8443/users/1
          curl --cacert "$CA" -d '{"name": "Ada"}' https://localhost:8443/users
          curl --cacert "$CA" 'https://localhost:8443/users?limit=1'
          curl --cacert "$CA" 'https://localhost:8443/users?limit=abc'     # 422, says why
"""

from dataclasses import dataclass
from typing import Any

from framework import App, HTTPError, JSONResponse, Request

app = App()
users: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "Grace"}}


@dataclass
class NewUser:
    """The body of ``POST /users``."""

    name: str


@app.get("/users")
async def list_users(request: Request, limit: int | None = None) -> list[dict[str, Any]]:
    if limit is not None and limit < 0:
        raise HTTPError(422, "limit must be 0 or more")
    return list(users.values())[:limit]


@app.get("/users/{user_id:int}")
async def get_user(request: Request, user_id: int) -> dict[str, Any]:
    if user_id not in users:
        raise HTTPError(404, f"no user {user_id}")
    return users[user_id]


@app.post("/users")
async def create_user(request: Request, new: NewUser) -> JSONResponse:
    user_id = max(users, default=0) + 1
    users[user_id] = {"id": user_id, "name": new.name}
    return JSONResponse({"id": user_id}, status=201, headers={"location": f"/users/{user_id}"})


@app.delete("/users/{user_id:int}")
async def delete_user(request: Request, user_id: int) -> None:
    users.pop(user_id, None)
