"""A small JSON API: path parameters with types, a query string, a POST body, errors.

Run it:   python -m framework serve examples.json_api:app
Poke it:  CA="$(python -m framework certs dev-ca)"
          curl --cacert "$CA" https://localhost:8443/users/1
          curl --cacert "$CA" -d '{"name": "Ada"}' https://localhost:8443/users
          curl --cacert "$CA" 'https://localhost:8443/users?limit=1'
"""

from typing import Any

from framework import App, HTTPError, Request, Response

app = App()
users: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "Grace"}}


@app.get("/users")
async def list_users(request: Request) -> list[dict[str, Any]]:
    limit = int(request.query.get("limit") or len(users))
    return list(users.values())[:limit]


@app.get("/users/{user_id:int}")
async def get_user(request: Request, user_id: int) -> dict[str, Any]:
    if user_id not in users:
        raise HTTPError(404, f"no user {user_id}")
    return users[user_id]


@app.post("/users")
async def create_user(request: Request) -> Response:
    data = await request.json()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise HTTPError(422, 'expected {"name": "..."}')
    user_id = max(users, default=0) + 1
    users[user_id] = {"id": user_id, "name": data["name"]}
    return Response(
        f'{{"id": {user_id}}}',
        status=201,
        headers={"location": f"/users/{user_id}"},
        media_type="application/json",
    )


@app.delete("/users/{user_id:int}")
async def delete_user(request: Request, user_id: int) -> None:
    users.pop(user_id, None)
