"""The baseline: a bare FastAPI app with one write-shaped and one read-shaped endpoint, no storage."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    title: str
    priority: str = "medium"


@app.get("/health")
def health() -> dict[str, Any]:
    return {"data": {"status": "ok"}}


@app.post("/items", status_code=201)
def create(body: Body) -> dict[str, Any]:
    return {"data": body.model_dump(), "meta": {"position": 1, "version": 1}}


@app.get("/items/{item_id}")
def read(item_id: str) -> dict[str, Any]:
    return {"data": {"id": item_id, "title": "x", "priority": "medium"}}
