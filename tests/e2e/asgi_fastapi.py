"""A small FastAPI app for the end-to-end tests: a Pydantic model, a path parameter, OpenAPI.

No ``from __future__ import annotations`` here: FastAPI reads the annotations at runtime.
"""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


app = FastAPI(title="items")


@app.post("/items")
async def create(item: Item) -> dict[str, Any]:
    return {"item": item.model_dump(), "total": item.price * 2}


@app.get("/items/{item_id}")
async def read(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}
