"""Shared answers: errors are `{"error": "..."}` with the field or setting at fault named in the message."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
