"""Request body size limit, enforced on the declared Content-Length *and* while streaming
(chunked bodies without a length cannot get past it either)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warden.service.errors import body_too_large, error_response


class BodySizeLimitMiddleware:
    """`path_limits` gives some paths their own limit (media uploads need more than JSON)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value
                break
        if declared is not None:
            try:
                length = int(declared)
                if length < 0:
                    raise ValueError
            except ValueError:
                await error_response(400, "invalid_content_length", "Content-Length must be a non-negative integer")(
                    scope, receive, send
                )
                return
            if length > max_bytes:
                err = body_too_large(max_bytes)
                await error_response(err.status, err.code, err.message, err.details)(scope, receive, send)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise body_too_large(max_bytes)  # rendered by the ApiError handler
            return message

        await self.app(scope, limited_receive, send)
