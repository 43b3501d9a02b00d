"""Generated requests per operation (schemathesis): valid ones must be accepted, invalid ones refused, every
answer documented. Requests go through the judge's bounded client, not schemathesis' own session."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode

from avito_harness.judge.contract.model import ContractOptions, OperationResult, Violation, mask_answer

__all__ = ["curl", "fuzz"]


def curl(case: Any, url: str) -> str:
    command: str = case.as_curl_command(base_url=url)
    return command.replace("'X-API-Key: [Filtered]'", '"X-API-Key: $GATEWAY_API_KEY"')


def _describe(exc: BaseException, response: httpx.Response, api_key: str) -> tuple[str, str]:
    failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
    titles = "; ".join(dict.fromkeys(getattr(e, "title", type(e).__name__) for e in failures))
    lines = [f"- {getattr(e, 'title', type(e).__name__)}: {getattr(e, 'message', '') or e}".rstrip(": ") for e in failures]
    lines.append(f"answer: {response.status_code} {mask_answer(response.text[:300], api_key)}")
    return titles, "\n".join(lines)


def _fuzz_defect(response: httpx.Response) -> str:
    """A 422 (FastAPI's default) or any non-SPEC error body for a bad request is its own defect class."""
    return "validation_not_spec_body" if response.status_code == 422 else "contract_violation"


def _send(case: Any, options: ContractOptions, http: httpx.Client) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=options.gateway_url)
    headers = {k: v for k, v in dict(kwargs.pop("headers", {}) or {}).items() if k.lower() != "accept-encoding"}
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k in ("method", "url", "params", "cookies", "json",
                                                                         "data", "files", "content")}
    if kwargs.get("cookies") == {}:
        kwargs.pop("cookies")
    if isinstance(kwargs.get("data"), (bytes, str)):  # a raw body: httpx takes it as content
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files"):
        kwargs["files"] = [_renderable(part) for part in kwargs["files"]]
    request = http.build_request(headers=headers, **kwargs)
    request.read()  # a multipart body is a stream; schemathesis reads the request's bytes when it judges the answer
    return http.send(request)


def _renderable(part: Any) -> Any:
    """A multipart part httpx can write: a generated number or null in a negative case goes as its JSON text (as a
    browser's form would send it), never as an object httpx cannot read."""
    name, value = part
    if not isinstance(value, tuple):
        return part
    filename, content, *rest = value
    if not isinstance(content, (str, bytes)) and not hasattr(content, "read"):
        content = json.dumps(content)
    return name, (filename, content, *rest)


def fuzz(op: Any, invalid_source: Any, options: ContractOptions, result: OperationResult, http: httpx.Client) -> None:
    seen: set[str] = set()
    # An image must really be an image: schema-valid bytes that are not one are refused, rightly.
    excluded = [positive_data_acceptance] if result.operation == "sendImage" else []
    strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         invalid_source.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @settings(max_examples=options.max_examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        result.calls += 1
        try:
            response = _send(case, options, http)
        except httpx.HTTPError as exc:
            _add(result, seen, "No answer", f"{type(exc).__name__}: {exc} (also on a fresh connection)",
                 curl(case, options.gateway_url))
            return
        try:
            case.validate_response(response, excluded_checks=excluded)
        except (Failure, FailureGroup) as exc:
            title, message = _describe(exc, response, options.api_key)
            _add(result, seen, title, message, curl(case, options.gateway_url), _fuzz_defect(response))

    try:
        run()
    except Exception as exc:  # the schema itself could not be used for this operation
        result.skipped = f"the contract could not drive this operation: {type(exc).__name__}: {exc}"[:300]


def _add(result: OperationResult, seen: set[str], title: str, message: str, curl_line: str,
         defect: str = "contract_violation") -> None:
    if title in seen:
        return
    seen.add(title)
    result.violations.append(Violation(title, message.strip()[:600], curl_line, defect))
