"""Helpers shared by the refusal and lookup tests."""

from __future__ import annotations

from typing import Any


def refuse(client: Any, **body: Any) -> Any:
    """File a refusal through the API (for AI training unless ``purposes`` says otherwise); its JSON."""
    response = client.post("/api/v1/refusals", {"purposes": ["train-ai"], **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()
