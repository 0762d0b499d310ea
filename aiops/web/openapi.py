"""`GET /openapi.json`: the API's schema, with the webhook payload's schema taken from its pydantic model."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aiops import __version__
from aiops.payload import WebhookPayload


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _remediation() -> dict[str, Any]:
    """The pause switch of automatic remediation."""
    switch = {
        "description": "the pause switch as it stands",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RemediationSwitch"}}},
    }
    flip = {
        "summary": "",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": switch,
            "401": _error("no approver login (remediation.web_users or remediation.trusted_user_header)"),
            "403": _error("not in remediation.approvers.web; nothing changed"),
            "415": _error("not application/json"),
        },
    }
    return {
        "/api/v1/remediation": {
            "get": {
                "summary": "Whether automatic remediation is paused, by whom, since when",
                "responses": {"200": switch},
            }
        },
        "/api/v1/remediation/pause": {"post": {**flip, "summary": "Pause automatic remediation (approvers)"}},
        "/api/v1/remediation/resume": {
            "post": {**flip, "summary": "Resume automatic remediation (approvers)"}
        },
    }


def document() -> dict[str, Any]:
    payload = WebhookPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = payload.pop("$defs", {})
    incident_id = {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "aiops", "version": __version__},
        "paths": {
            "/webhook/alertmanager": {
                "post": {
                    "summary": "Alertmanager webhook (payload version 4); 200 only once the delivery is committed",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/WebhookPayload"}}
                        },
                    },
                    "responses": {
                        "200": {"description": "committed (or recognised as a redelivery)"},
                        "400": _error("malformed JSON or payload; the message names the field"),
                        "401": _error("missing or wrong credentials"),
                        "413": _error("body over webhook.max_body"),
                        "415": _error("not application/json"),
                        "503": _error("the store could not commit; Alertmanager retries"),
                    },
                }
            },
            "/api/v1/incidents": {
                "get": {
                    "summary": "Incidents, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"enum": ["open", "resolved"]}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                        {"name": "before", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {"description": "a page of incidents"},
                        "400": _error("bad query parameter"),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}": {
                "get": {
                    "summary": "One incident with its alerts, triages, notifications and timeline",
                    "parameters": [incident_id],
                    "responses": {"200": {"description": "the incident"}, "404": _error("no such incident")},
                }
            },
            **_remediation(),
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: store reachable, queue age",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "store unreachable"},
                    },
                }
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}
            },
        },
        "components": {
            "schemas": {
                "WebhookPayload": payload,
                **definitions,
                "RemediationSwitch": {
                    "type": "object",
                    "properties": {
                        "paused": {"type": "boolean"},
                        "by": {"type": ["string", "null"]},
                        "via": {"type": ["string", "null"]},
                        "since": {"type": ["string", "null"], "format": "date-time"},
                        "mode": {"enum": ["off", "suggest", "approve", "auto"]},
                        "outcome": {"enum": ["paused", "resumed", "already", "refused"]},
                        "message": {"type": "string"},
                    },
                    "required": ["paused", "mode"],
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
            }
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
