"""API key authentication and role checks for /v1 routes.

401: no key, or a key that is unknown, malformed or revoked (with `WWW-Authenticate`).
403: a valid key whose role may not use the route.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from warden.service.errors import ApiError
from warden.store import ApiKeyRecord, Store

bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer wdn_...`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: wdn_...`")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="warden"'}


def require_roles(*roles: str) -> Callable[..., ApiKeyRecord]:
    allowed = ", ".join(roles)

    # A sync dependency: FastAPI runs it in the threadpool, so the DB lookup never blocks the loop.
    def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
        x_api_key: str | None = Depends(api_key_scheme),
    ) -> ApiKeyRecord:
        presented = bearer.credentials if bearer is not None else x_api_key
        if not presented:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers=_CHALLENGE,
            )
        store: Store = request.app.state.store
        key = store.authenticate(presented)
        if key is None:
            raise ApiError(401, "unauthorized", "invalid or revoked API key", headers=_CHALLENGE)
        if key.role not in roles:
            raise ApiError(
                403,
                "forbidden",
                f"an API key with role {key.role!r} may not use this route; allowed roles: {allowed}",
                {"role": key.role, "allowed_roles": list(roles)},
            )
        request.state.api_key = key
        return key

    return dependency
