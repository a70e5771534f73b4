"""Claude as a policy-as-prompt classifier, through the Anthropic Messages API and the official SDK.

Wire format (Messages API reference, `anthropic-version: 2023-06-01`): `POST /v1/messages`
with `model`, `max_tokens`, `system`, `messages`, `tools` and `tool_choice`. The policy is
the system prompt; the answer is forced through one tool (`tool_choice: {"type": "tool"}`)
whose `input_schema` is the verdict schema, so the reply's `content` holds a `tool_use`
block with the verdicts as its `input`. A repair sends the model's `tool_use` back with a
`tool_result` marked `is_error: true` that lists the problems, as the tool-use guide
describes. Errors come as `{"type": "error", "error": {"type", "message"}}`; 429 and 529
(overloaded) carry `retry-after`. Usage is billed per input and output token.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from warden.detectors.providers.base import ProviderParams, Sent, Usage, sdk_error
from warden.detectors.providers.llm import LlmParams, LlmTurn, PolicyPromptDetector
from warden.detectors.providers.prompt import TOOL_NAME, repair_message
from warden.detectors.providers.resilience import ErrorKind, ProviderError

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicClaudeParams(LlmParams):
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    # Recent Claude models reject sampling parameters; set one only for a model that takes it.
    temperature: float | None = Field(default=None, ge=0.0, le=1.0, description="None: not sent")


class AnthropicClaudeDetector(PolicyPromptDetector):
    name: ClassVar[str] = "anthropic_claude"
    Params: ClassVar[type[ProviderParams]] = AnthropicClaudeParams
    provider_docs: ClassVar[str] = "Anthropic Messages API reference and tool-use guide, anthropic-version 2023-06-01"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    default_model: ClassVar[str] = "claude-sonnet-4-5"

    def sdk(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import anthropic

                # The API version is pinned: the answer is parsed here against that version's format,
                # whatever the installed SDK would default to.
                self._client = anthropic.Anthropic(api_key=self._secret.reveal() if self._secret else None,
                                                   base_url=self.base_url, timeout=self.params.timeout_s,  # type: ignore[attr-defined]
                                                   max_retries=0,
                                                   default_headers={"anthropic-version": ANTHROPIC_VERSION})
            return self._client

    def _tool(self) -> dict[str, Any]:
        return {"name": TOOL_NAME,
                "description": "Record the verdict for every policy category, with quotes and a rationale.",
                "input_schema": dict(self.prompt.schema)}

    def _complete(self, text: str, repair: tuple[LlmTurn, tuple[str, ...]] | None,
                  context: str = "") -> Sent[LlmTurn]:
        p: LlmParams = self.params  # type: ignore[assignment]
        messages: list[dict[str, Any]] = [{"role": "user", "content": self.prompt.user_message(text, context)}]
        if repair is not None:
            previous, problems = repair
            messages.append({"role": "assistant", "content": previous.echo or [{"type": "text", "text": "{}"}]})
            if previous.tool_use_id:
                result = {"type": "tool_result", "tool_use_id": previous.tool_use_id, "is_error": True,
                          "content": repair_message(problems)}
                messages.append({"role": "user", "content": [result]})
            else:
                messages.append({"role": "user", "content": repair_message(problems)})
        try:
            raw = self.sdk().messages.with_raw_response.create(
                model=self.model, max_tokens=p.max_output_tokens, system=self.prompt.system, messages=messages,
                tools=[self._tool()], tool_choice={"type": "tool", "name": TOOL_NAME},
                extra_body={"temperature": p.temperature} if p.temperature is not None else None)
            body = raw.http_response.text
        except Exception as exc:
            raise sdk_error(exc, timeout_s=p.timeout_s) from None
        return parse_message(body)


def parse_message(body: str) -> Sent[LlmTurn]:
    """The tool input of a Messages API response; MALFORMED when the body is not the documented shape."""
    try:
        data = json.loads(body)
        content = data["content"]
        usage = data.get("usage") or {}
        tokens = Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
        if not isinstance(content, list):
            raise TypeError("content is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the Messages API answer is not the documented format ({type(exc).__name__})") from None
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") == TOOL_NAME:
            answer = block.get("input")
            if data.get("stop_reason") == "max_tokens":
                answer = None  # cut off mid-answer: ask again (repair) rather than trust a partial tool input
            return Sent(LlmTurn(answer=answer if isinstance(answer, dict) else None, echo=content,
                                tool_use_id=str(block.get("id") or "") or None), tokens)
    text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return Sent(LlmTurn(answer=text or None, echo=content or None), tokens)
