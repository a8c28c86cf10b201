"""The app's services as an Annotated dependency (no DI container: one `Services` built in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.composition import Services

RagState = Services  # what the routes call the app's services


def get_state(request: Request) -> Services:
    """The app's services (built by the lifespan through `app.composition.build_services`)."""
    state: Services = request.app.state.rag
    return state


State = Annotated[Services, Depends(get_state)]
