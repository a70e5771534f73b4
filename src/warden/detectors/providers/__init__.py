"""Third-party and LLM classifiers behind the one detector interface (HTTP adapters).

Each adapter maps its provider's labels to the policy's categories with the mapping the
policy declares, and shares one resilience layer (`resilience.py`: retries with jitter, a
circuit breaker, a rate limiter, a response cache) and one accounting layer (`metrics.py`).
The policy-as-prompt detectors render the policy's own text into the prompt (`prompt.py`).
Modules are imported lazily by the registry; the SDKs (`openai`, `anthropic`) only when a
detector that needs them is built (extra: `warden[providers]`).
"""

#: Registry names of the provider adapters (entry points in pyproject.toml).
PROVIDER_DETECTORS: tuple[str, ...] = (
    "openai_moderation",
    "anthropic_claude",
    "openai_chat",
    "hive",
    "perspective",
    "azure_content_safety",
)

__all__ = ["PROVIDER_DETECTORS"]
