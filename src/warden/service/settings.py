"""HTTP service settings (limits). Values come from arguments or `WARDEN_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from warden.ingest import MAX_TEXT_CHARS


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    #: Largest accepted request body in bytes, enforced while streaming (413 beyond). 2 MiB
    #: holds one item at the 200,000-character limit even in 4-byte UTF-8, and bounds the
    #: memory one request can take.
    max_body_bytes: int = 2 * 1024 * 1024
    #: Largest request body of POST /v1/moderate/media (multipart: the fields and every file).
    max_media_body_bytes: int = 40 * 1024 * 1024
    #: Most items in one `{"items": [...]}` batch (422 beyond).
    max_batch_items: int = 100
    #: Longest `text` in characters (422 beyond, the message states the limit).
    max_text_chars: int = MAX_TEXT_CHARS
    #: Surface used when an item has none.
    default_surface: str = "comment"
    #: Serve /docs, /redoc and /openapi.json.
    docs: bool = True
    #: Keep the text of every moderated item in the `content` table (for backtests with
    #: `warden eval backtest --from-store`). OFF by default: it stores user content, so set a
    #: retention period and purge it (`Store.purge_content`). Env WARDEN_ARCHIVE_CONTENT=1.
    archive_content: bool = False
    #: A candidate policy file to run in shadow mode beside the live policy (its decisions are
    #: stored in `shadow_decisions`, never acted on or returned). Env WARDEN_SHADOW_POLICY.
    shadow_policy: str | None = None
    #: Requests waiting for the shadow worker; beyond this, shadow work is dropped (counted).
    shadow_queue_size: int = 1000

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"WARDEN_{f.name.upper()}")
            if raw is None:
                continue
            if f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
