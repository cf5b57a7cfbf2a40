"""Every endpoint of the gateway: the declarations of each handler module, in order. Routes,
audit route labels and the OpenAPI document all come from this tuple
(gateway/api/endpoints.py); a module of new endpoints is added here once."""

from __future__ import annotations

from gateway.api import admin, aggregate, audit, datasets, export, health, oauth
from gateway.api.endpoints import endpoints_in

ENDPOINTS = endpoints_in(health, oauth, datasets, export, aggregate, audit, admin)
