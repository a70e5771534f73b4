"""Any OpenAI-compatible chat server as a policy-as-prompt classifier: vLLM, llama.cpp's
`llama-server`, Ollama, gpt-oss-safeguard served locally, or OpenAI itself.

Wire format (OpenAI API reference, "Chat Completions", create): `POST {base_url}/chat/completions`
with `model`, `messages` (system = the rendered policy, user = the fenced content) and one of
three structured-output modes, chosen by `structured_output`:
- `json_schema` (default): `response_format: {"type": "json_schema", "json_schema": {"name",
  "schema", "strict": true}}` (OpenAI, vLLM, llama.cpp, Ollama >= 0.5);
- `json_object`: `response_format: {"type": "json_object"}` for servers without schema support
  (the schema is then only in the prompt, and validation does the rest);
- `tools`: a forced function call whose `parameters` is the schema.
The answer is `choices[0].message.content` (or the tool call's `arguments`); usage is
`usage.prompt_tokens` / `usage.completion_tokens`. Errors: `{"error": {"message", "type",
"code"}}`. Local servers usually need no key: leave `api_key_env` unset.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import Field

from warden.detectors.providers.base import ProviderParams, Sent, Usage, sdk_error
from warden.detectors.providers.llm import LlmParams, LlmTurn, PolicyPromptDetector
from warden.detectors.providers.prompt import SCHEMA_NAME, TOOL_NAME, repair_message
from warden.detectors.providers.resilience import ErrorKind, ProviderError


class OpenAIChatParams(LlmParams):
    structured_output: Literal["json_schema", "json_object", "tools"] = "json_schema"
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens", description="OpenAI's reasoning models need max_completion_tokens")
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        default=None, description="for reasoning models (gpt-oss-safeguard reads it from the request)")


class OpenAIChatDetector(PolicyPromptDetector):
    name: ClassVar[str] = "openai_chat"
    Params: ClassVar[type[ProviderParams]] = OpenAIChatParams
    provider_docs: ClassVar[str] = ("OpenAI API reference, Chat Completions (response_format json_schema, tools), "
                                    "as of 2026-11; vLLM / llama.cpp / Ollama OpenAI-compatible servers")
    requires_key: ClassVar[bool] = False
    default_base_url: ClassVar[str] = ""  # required: which server is a deployment choice
    default_model: ClassVar[str] = ""

    def sdk(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                # The SDK insists on a key; local servers ignore the Authorization header.
                self._client = openai.OpenAI(api_key=self._secret.reveal() if self._secret else "no-key",
                                             base_url=self.base_url, timeout=self.params.timeout_s,  # type: ignore[attr-defined]
                                             max_retries=0)
            return self._client

    def _request_options(self) -> dict[str, Any]:
        p: OpenAIChatParams = self.params  # type: ignore[assignment]
        opts: dict[str, Any] = {p.max_tokens_field: p.max_output_tokens}
        if p.temperature is not None:
            opts["temperature"] = p.temperature
        if p.reasoning_effort is not None:
            opts["reasoning_effort"] = p.reasoning_effort
        schema = dict(self.prompt.schema)
        if p.structured_output == "json_schema":
            opts["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}
        elif p.structured_output == "json_object":
            opts["response_format"] = {"type": "json_object"}
        else:
            opts["tools"] = [{"type": "function", "function": {
                "name": TOOL_NAME, "description": "Record the verdict for every policy category.",
                "parameters": schema, "strict": True}}]
            opts["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
        return opts

    def _system(self) -> str:
        p: OpenAIChatParams = self.params  # type: ignore[assignment]
        if p.structured_output == "json_object":
            # Without schema enforcement the model must see the schema to follow it.
            return (self.prompt.system + "\n\nReply with one JSON object that follows this JSON schema:\n"
                    + json.dumps(self.prompt.schema, ensure_ascii=False))
        return self.prompt.system

    def _complete(self, text: str, repair: tuple[LlmTurn, tuple[str, ...]] | None,
                  context: str = "") -> Sent[LlmTurn]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self._system()},
                                          {"role": "user", "content": self.prompt.user_message(text, context)}]
        if repair is not None:
            previous, problems = repair
            if previous.tool_use_id and isinstance(previous.echo, dict):
                messages += [previous.echo, {"role": "tool", "tool_call_id": previous.tool_use_id,
                                             "content": repair_message(problems)}]
            else:
                said = previous.answer if isinstance(previous.answer, str) else json.dumps(previous.answer)
                messages += [{"role": "assistant", "content": said or ""},
                             {"role": "user", "content": repair_message(problems)}]
        try:
            raw = self.sdk().chat.completions.with_raw_response.create(
                model=self.model, messages=messages, **self._request_options())
            body = raw.http_response.text
        except Exception as exc:
            raise sdk_error(exc, timeout_s=self.params.timeout_s) from None  # type: ignore[attr-defined]
        return parse_chat_completion(body)


def parse_chat_completion(body: str) -> Sent[LlmTurn]:
    """The answer of a chat completion response; MALFORMED when it is not the documented shape."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        message = choice["message"]
        usage = data.get("usage") or {}
        tokens = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the chat completion is not the documented format ({type(exc).__name__})") from None
    calls = message.get("tool_calls") or []
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and fn.get("name") == TOOL_NAME:
            echo = {"role": "assistant", "content": message.get("content"), "tool_calls": [call]}
            return Sent(LlmTurn(answer=fn.get("arguments") if isinstance(fn.get("arguments"), str) else None,
                                echo=echo, tool_use_id=str(call.get("id") or "") or None), tokens)
    content = message.get("content")
    return Sent(LlmTurn(answer=content if isinstance(content, str) and content.strip() else None), tokens)
