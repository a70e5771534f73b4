"""Local servers that speak each provider's documented wire format (see docs/providers.md for
the documentation versions). Each validates auth and the request body as the provider does
and answers with the documented success and error shapes."""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any

from provider_wire import Reply, Request, WireServer, category_scores, keyword_hits

# -- OpenAI moderation ---------------------------------------------------------------------------

OPENAI_LABELS = ("sexual", "sexual/minors", "harassment", "harassment/threatening", "hate", "hate/threatening",
                 "illicit", "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "violence",
                 "violence/graphic")


def _openai_error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAIServer(WireServer):
    """`POST /v1/moderations` and `POST /v1/chat/completions` (the chat part is in OpenAIChatServer)."""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = key

    def error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests",
                500: "server_error", 503: "server_error"}.get(status, "api_error")
        return _openai_error(message, kind)

    def check_auth(self, req: Request) -> Reply | None:
        if self.key is None:
            return None
        got = req.headers.get("authorization", "")
        if got != f"Bearer {self.key}":
            shown = got.removeprefix("Bearer ")
            masked = shown[:3] + "*" * 4 + shown[-4:] if len(shown) > 8 else "***"
            return Reply.json(401, _openai_error(f"Incorrect API key provided: {masked}. You can find your API key "
                                                 "at https://platform.openai.com/account/api-keys.",
                                                 "invalid_request_error", "invalid_api_key"))
        return None

    def handle(self, req: Request) -> Reply:
        denied = self.check_auth(req)
        if denied:
            return denied
        if req.path != "/v1/moderations":
            return self.error(404, f"Invalid URL (POST {req.path})")
        body = req.json()
        inputs = body.get("input")
        if not isinstance(body.get("model"), str):
            return Reply.json(400, _openai_error("'model' must be a string", "invalid_request_error"))
        if isinstance(inputs, str):
            groups = [[{"type": "text", "text": inputs}]]
        elif isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
            groups = [[{"type": "text", "text": x}] for x in inputs]
        elif isinstance(inputs, list) and inputs and all(isinstance(x, dict) for x in inputs):
            groups = [inputs]
        else:
            return Reply.json(400, _openai_error("'input' must be a string, an array of strings or an array of "
                                                 "content parts", "invalid_request_error"))
        if len(groups) > 32:
            return Reply.json(400, _openai_error("too many inputs (max 32)", "invalid_request_error"))
        results = []
        for parts in groups:
            scores = dict.fromkeys(OPENAI_LABELS, 0.0001)
            applied: dict[str, list[str]] = {label: [] for label in OPENAI_LABELS}
            for part in parts:
                if part.get("type") == "text":
                    for cat, s in category_scores(part["text"]).items():
                        if cat in scores:
                            scores[cat] = max(scores[cat], s)
                            applied[cat].append("text")
                elif part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    if url.startswith("data:"):
                        data = base64.b64decode(url.split(",", 1)[1])
                        if b"NSFW" in data:
                            scores["sexual"] = 0.96
                            applied["sexual"].append("image")
                else:
                    return Reply.json(400, _openai_error(f"unknown content part type {part.get('type')!r}",
                                                         "invalid_request_error"))
            results.append({"flagged": any(s >= 0.5 for s in scores.values()),
                            "categories": {k: v >= 0.5 for k, v in scores.items()},
                            "category_scores": scores, "category_applied_input_types": applied})
        return Reply.json(200, {"id": "modr-test", "model": body["model"], "results": results})


# -- policy-as-prompt: a deterministic "LLM" ---------------------------------------------------------

_CONTENT = re.compile(r"<content-([0-9a-f]{12})>\n(.*)\n</content-\1>", re.DOTALL)


class FakeJudge:
    """Reads the fenced content from the user message and answers for the categories of the
    schema's enum, quoting the keyword it found. `mode` injects LLM misbehaviour:
    "hallucinate_once" (a made-up quote, fixed on repair), "hallucinate" (always),
    "missing_once" (drops a category, fixed on repair), "prose" (not JSON at all)."""

    def __init__(self) -> None:
        self.mode = "ok"

    def answer(self, user_text: str, categories: list[str], *, repair: bool) -> Any:
        m = _CONTENT.search(user_text)
        text = m.group(2) if m else ""
        hits = {cat: (word, pos, score) for cat, word, pos, score in keyword_hits(text)}
        verdicts = []
        for cat in categories:
            if cat in hits:
                word, pos, score = hits[cat]
                verdicts.append({"category": cat, "violating": True, "confidence": score,
                                 "quotes": [text[pos:pos + len(word)]], "rationale": f"contains {word!r}"})
            else:
                verdicts.append({"category": cat, "violating": False, "confidence": 0.9, "quotes": [],
                                 "rationale": "nothing in the content matches the definition"})
        if self.mode == "prose" and not repair:
            return "I think this content is fine."
        if (self.mode == "hallucinate" or (self.mode == "hallucinate_once" and not repair)) and verdicts:
            verdicts[0] = {**verdicts[0], "violating": True, "confidence": 0.8,
                           "quotes": ["words the user never wrote"]}
        if self.mode == "missing_once" and not repair:
            verdicts = verdicts[1:]
        return {"verdicts": verdicts}


def _schema_categories(schema: dict[str, Any]) -> list[str]:
    return schema["properties"]["verdicts"]["items"]["properties"]["category"]["enum"]


# -- Anthropic Messages API ---------------------------------------------------------------------------


class AnthropicServer(WireServer):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.judge = FakeJudge()

    def error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}

    def handle(self, req: Request) -> Reply:
        # The API takes the key as x-api-key; the SDK since 2.x sends it as a bearer token.
        if self.key not in (req.headers.get("x-api-key"), req.headers.get("authorization", "").removeprefix("Bearer ")):
            return self.error(401, "invalid x-api-key")
        if not req.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        if req.path != "/v1/messages":
            return self.error(404, f"Not found: {req.path}")
        body = req.json()
        problems = []
        if not isinstance(body.get("model"), str):
            problems.append("model: Field required")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            problems.append("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
            problems.append("messages: first message must use the user role")
        else:
            for a, b in itertools.pairwise(messages):
                if a.get("role") == b.get("role"):
                    problems.append("messages: roles must alternate between user and assistant")
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool" and not any(t.get("name") == choice.get("name") for t in tools):
            problems.append("tool_choice: tool not found in tools")
        if problems:
            return self.error(400, "; ".join(problems))
        first = messages[0]["content"]
        user_text = first if isinstance(first, str) else "".join(
            b.get("text", "") for b in first if isinstance(b, dict))
        repair = len(messages) > 1
        if repair:  # a repair must answer the tool_use with an is_error tool_result
            last = messages[-1]["content"]
            if isinstance(last, list) and not any(b.get("type") == "tool_result" and b.get("is_error")
                                                  for b in last):
                return self.error(400, "messages: expected a tool_result block")
        tool = next(t for t in tools if t.get("name") == choice.get("name"))
        answer = self.judge.answer(user_text, _schema_categories(tool["input_schema"]), repair=repair)
        content: list[dict[str, Any]]
        if isinstance(answer, str):
            content = [{"type": "text", "text": answer}]
        else:
            content = [{"type": "tool_use", "id": f"toolu_{len(self.requests):04d}", "name": tool["name"],
                        "input": answer}]
        return Reply.json(200, {"id": "msg_test", "type": "message", "role": "assistant", "model": body["model"],
                                "content": content, "stop_reason": "tool_use", "stop_sequence": None,
                                "usage": {"input_tokens": 1200, "output_tokens": 300}})


# -- OpenAI-compatible chat completions ----------------------------------------------------------------


class OpenAIChatServer(OpenAIServer):
    """`POST /v1/chat/completions` as OpenAI, vLLM, llama.cpp and Ollama serve it."""

    def __init__(self, key: str | None = None) -> None:
        super().__init__(key)
        self.judge = FakeJudge()

    def handle(self, req: Request) -> Reply:
        denied = self.check_auth(req)
        if denied:
            return denied
        if req.path != "/v1/chat/completions":
            return self.error(404, f"Invalid URL (POST {req.path})")
        body = req.json()
        messages = body.get("messages")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
            return Reply.json(400, _openai_error("'model' and a non-empty 'messages' are required",
                                                 "invalid_request_error"))
        if any(m.get("role") not in ("system", "user", "assistant", "tool") for m in messages):
            return Reply.json(400, _openai_error("invalid role in messages", "invalid_request_error"))
        fmt = body.get("response_format") or {}
        tools = body.get("tools") or []
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            if not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
                return Reply.json(400, _openai_error("response_format.json_schema needs 'name' and 'schema'",
                                                     "invalid_request_error"))
            categories = _schema_categories(spec["schema"])
        elif tools:
            categories = _schema_categories(tools[0]["function"]["parameters"])
        elif fmt.get("type") == "json_object":
            system = messages[0]["content"]
            m = re.search(r"Give exactly one verdict per category, for all \d+ categories: (.*)\. For each", system)
            categories = m.group(1).split(", ") if m else []
        else:
            return Reply.json(400, _openai_error("this test server expects structured output",
                                                 "invalid_request_error"))
        user_text = next(m["content"] for m in messages if m["role"] == "user")
        repair = messages[-1]["role"] == "tool" or sum(m["role"] == "user" for m in messages) > 1
        answer = self.judge.answer(user_text, categories, repair=repair)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if tools:
            message = {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call_{len(self.requests):04d}", "type": "function",
                "function": {"name": tools[0]["function"]["name"], "arguments": text}}]}
            finish = "tool_calls"
        return Reply.json(200, {"id": "chatcmpl-test", "object": "chat.completion", "created": 1763780000,
                                "model": body["model"],
                                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                "usage": {"prompt_tokens": 900, "completion_tokens": 250, "total_tokens": 1150}})


# -- Hive ------------------------------------------------------------------------------------------------

HIVE_TEXT_HEADS = {"sexual": "sexual", "hate": "hate", "violence": "violence", "harassment": "bullying",
                   "spam": "spam", "illicit": "drugs", "self-harm": "self_harm"}


class HiveServer(WireServer):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def error_body(self, status: int, message: str) -> Any:
        return {"status_code": status, "message": message}

    def handle(self, req: Request) -> Reply:
        if req.headers.get("authorization", "").lower() != f"token {self.key}".lower():
            return self.error(401, "Unauthorized: invalid API key")
        if req.path != "/api/v2/task/sync":
            return self.error(404, "Not Found")
        form = req.form()
        if "text_data" in form:
            text = form["text_data"][0]
            if len(text) > 1024:
                return self.error(400, "text_data exceeds the maximum length of 1024 characters")
            levels = {head: 0 for head in ("sexual", "hate", "violence", "bullying", "spam", "drugs", "self_harm")}
            for cat, s in category_scores(text).items():
                head = HIVE_TEXT_HEADS.get(cat)
                if head:
                    levels[head] = 3 if s >= 0.9 else 2
            if "ありがとう" in text:  # a language the heads do not support
                levels = dict.fromkeys(levels, -1)
            filters = [{"value": word, "start_index": pos, "end_index": pos + len(word), "type": "profanity"}
                       for _cat, word, pos, _s in keyword_hits(text) if word in ("idiot", "loser")]
            response = {"input": {"hash": "x", "inference_client_version": "test"}, "custom_classes": [],
                        "text_filters": filters, "pii_entities": [], "urls": [], "language": "EN",
                        "moderated_classes": sorted(levels),
                        "output": [{"time": 0, "start_char_index": 0, "end_char_index": len(text),
                                    "classes": [{"class": k, "score": v} for k, v in levels.items()]}]}
        elif "url" in form:
            url = form["url"][0]
            data = base64.b64decode(url.split(",", 1)[1]) if url.startswith("data:") else url.encode()
            nsfw = 0.97 if b"NSFW" in data else 0.01
            response = {"input": {"hash": "y"}, "output": [{"time": 0, "classes": [
                {"class": "general_nsfw", "score": nsfw}, {"class": "general_suggestive", "score": 0.02},
                {"class": "general_not_nsfw_not_suggestive", "score": 1 - nsfw},
                {"class": "very_bloody", "score": 0.0}]}]}
        else:
            return self.error(400, "one of text_data, url or media is required")
        return Reply.json(200, {"id": "task-test", "code": 200, "project_id": 1, "user_id": 1,
                                "created_on": "2026-11-22T03:00:00.000Z",
                                "status": [{"status": {"code": "0", "message": "SUCCESS"}, "response": response}]})


# -- Perspective -------------------------------------------------------------------------------------------

PERSPECTIVE_FROM = {"harassment": ("INSULT", "TOXICITY"), "hate": ("IDENTITY_ATTACK", "TOXICITY"),
                    "violence": ("THREAT", "TOXICITY")}
PERSPECTIVE_KNOWN = {"TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT",
                     "SEXUALLY_EXPLICIT", "FLIRTATION"}


class PerspectiveServer(WireServer):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def error_body(self, status: int, message: str) -> Any:
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE"}
        return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}

    def handle(self, req: Request) -> Reply:
        if req.headers.get("x-goog-api-key") != self.key or "key" in req.query:
            return self.error(400, "API key not valid. Please pass a valid API key.")
        if req.path != "/v1alpha1/comments:analyze":
            return self.error(404, "Method not found.")
        body = req.json()
        text = (body.get("comment") or {}).get("text")
        attrs = body.get("requestedAttributes")
        if not isinstance(text, str) or not isinstance(attrs, dict) or not attrs:
            return self.error(400, "Comment text and requested attributes are required.")
        unknown = set(attrs) - PERSPECTIVE_KNOWN
        if unknown:
            return self.error(400, f"Unknown attribute: {sorted(unknown)[0]}")
        if body.get("languages") and body["languages"][0] not in ("en", "es", "fr", "de", "ru", "ja"):
            return self.error(400, f"Attribute TOXICITY does not support request languages: {body['languages'][0]}")
        scores = dict.fromkeys(attrs, 0.02)
        spans: dict[str, list[dict[str, Any]]] = {a: [] for a in attrs}
        for cat, word, pos, s in keyword_hits(text):
            for attr in PERSPECTIVE_FROM.get(cat, ()):
                if attr in scores:
                    scores[attr] = max(scores[attr], s)
                    spans[attr].append({"begin": pos, "end": pos + len(word), "score": {"value": s,
                                                                                         "type": "PROBABILITY"}})
        return Reply.json(200, {"attributeScores": {
            a: {"spanScores": spans[a] or [{"begin": 0, "end": len(text),
                                            "score": {"value": v, "type": "PROBABILITY"}}],
                "summaryScore": {"value": v, "type": "PROBABILITY"}} for a, v in scores.items()},
            "languages": body.get("languages") or ["en"], "detectedLanguages": ["en"]})


# -- Azure AI Content Safety ------------------------------------------------------------------------------

AZURE_FROM = {"hate": "Hate", "self-harm": "SelfHarm", "sexual": "Sexual", "violence": "Violence"}


class AzureServer(WireServer):
    API_VERSION = "2024-09-01"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def error_body(self, status: int, message: str) -> Any:
        code = {400: "InvalidRequestBody", 401: "401", 429: "TooManyRequests", 500: "InternalServerError",
                503: "ServiceUnavailable"}.get(status, str(status))
        return {"error": {"code": code, "message": message, "target": None, "details": [],
                          "innererror": {"code": code, "message": message}}}

    def handle(self, req: Request) -> Reply:
        if req.headers.get("ocp-apim-subscription-key") != self.key:
            return self.error(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                                   "to provide a valid key for an active subscription and use a correct regional API "
                                   "endpoint for your resource.")
        if req.query.get("api-version") != [self.API_VERSION]:
            return self.error(404, "Resource not found")
        body = req.json()
        categories = body.get("categories") or list(AZURE_FROM.values())
        if any(c not in AZURE_FROM.values() for c in categories):
            return self.error(400, f"Invalid category in {categories}")
        if req.path == "/contentsafety/text:analyze":
            text = body.get("text")
            if not isinstance(text, str) or not text:
                return self.error(400, "The text field is required.")
            if len(text) > 10_000:
                return self.error(400, "Text length exceeds the limit of 10000 characters.")
            eight = body.get("outputType") == "EightSeverityLevels"
            found = {AZURE_FROM[c]: s for c, s in category_scores(text).items() if c in AZURE_FROM}
            analysis = []
            for c in categories:
                s = found.get(c, 0.0)
                severity = round(s * 7) if eight else (6 if s >= 0.9 else 4 if s >= 0.5 else 0)
                analysis.append({"category": c, "severity": severity})
            matches = []
            for name in body.get("blocklistNames") or []:
                if name == "house" and "buy followers" in text.lower():
                    matches.append({"blocklistName": "house", "blocklistItemId": "item-1",
                                    "blocklistItemText": "buy followers"})
            return Reply.json(200, {"blocklistsMatch": matches, "categoriesAnalysis": analysis})
        if req.path == "/contentsafety/image:analyze":
            image = body.get("image") or {}
            if "content" not in image and "blobUrl" not in image:
                return self.error(400, "image.content or image.blobUrl is required")
            data = base64.b64decode(image["content"]) if "content" in image else b""
            analysis = [{"category": c, "severity": 6 if (c == "Sexual" and b"NSFW" in data) else 0}
                        for c in categories]
            return Reply.json(200, {"categoriesAnalysis": analysis})
        return self.error(404, "Resource not found")
