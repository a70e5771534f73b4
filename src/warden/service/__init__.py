"""HTTP service: FastAPI app factory (`create_app`), schemas, auth, metrics, log redaction."""

from warden.service.app import create_app
from warden.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
