"""Base of the /v1 API's request bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """A request body, or a part of one, that rejects fields it does not define.

    A misspelled or unsupported field is a 422 naming it instead of a change that is
    silently left out.
    """

    model_config = ConfigDict(extra="forbid")
