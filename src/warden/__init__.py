"""Warden: open, self-hosted Trust & Safety.

    from warden import Moderator, load_policy
    mod = Moderator(load_policy("policies/default.yaml"))
    decision = mod.moderate({"id": "1", "text": "hello"})
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from warden.moderator import Moderator
    from warden.policy import load_policy

__all__ = ["Moderator", "__version__", "load_policy"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import warden.core` stays free of model/runtime imports.
    if name == "Moderator":
        from warden.moderator import Moderator

        return Moderator
    if name == "load_policy":
        from warden.policy import load_policy

        return load_policy
    raise AttributeError(name)
