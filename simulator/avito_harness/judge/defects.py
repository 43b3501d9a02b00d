"""The defects the acceptance run and ``contract`` name: a stable code per class, and the failure that carries it.

Codes are part of the ``--json`` reports (``defect`` per failure): CI
scripts and dashboards may match on them, so a code is never renamed.
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "ROOT_CAUSES", "Defect", "describe", "expect"]

CATALOGUE: dict[str, str] = {
    "token_basic_auth": "asks /token with HTTP Basic client auth; Avito documents client_id/client_secret as form fields",
    "token_request_refused": "Avito refused the gateway's token request",
    "wrong_api_version": "calls a Messenger path Avito does not serve (another API version)",
    "send_without_type": "sends a message body without \"type\": \"text\"",
    "probe_not_200": "answers Avito's {} registration probe with something other than 200",
    "webhook_not_200": "answers a webhook (even a broken one) with something other than 200; Avito retries or unsubscribes",
    "media_link_missing": "forwards a voice or image message without its link (voice_url / images[].url)",
    "wrong_client_name": "client_name is not the customer's name",
    "duplicate_forwarded": "forwards one Avito message to n8n more than once",
    "echo_forwarded": "echoes of its own sends or Avito's system messages reach n8n",
    "seller_reply_lost": "a reply the seller typed in the Avito app never reaches n8n",
    "seller_reply_unmarked": "the seller's reply reaches n8n as if the customer wrote it (the AI would answer it)",
    "message_lost": "a customer's message Avito delivered to the gateway never reaches n8n (lost, or held back)",
    "text_changed": "the text n8n receives is not what the customer wrote (content must pass unchanged)",
    "normalized_message_invalid": "what n8n receives breaks the normalized-message contract",
    "rate_limit_not_enforced": "the gateway's own rate limit lets more requests through than it announces",
    "rate_limit_too_strict": "the gateway's own rate limit refuses requests within what it announces",
    "rate_limit_never_resets": "the gateway's own rate limit stays closed after its window under steady traffic",
    "retry_after_ignored": "Avito's 429 with Retry-After is retried sooner than Avito asked",
    "send_posted_twice": "a send Avito may already have processed is posted again (the customer sees it twice)",
    "expired_token_not_refreshed": "an expired token (Avito's 401 or 403) is not refreshed: the caller gets the error",
    "avito_error_misreported": "an Avito error comes back to n8n with the wrong status, code or retryable flag",
    "history_unreadable": "a chat's history read through the gateway is refused or lacks the chat's messages",
    "read_not_forwarded": "marking a chat read through the gateway never reaches Avito",
    "webhook_too_slow": "Avito's webhook is answered only after n8n is: past Avito's 2 s when n8n is slow",
    "ids_misplaced": "an id of the normalized message is not where SPEC puts it (external_user_id is the customer, "
                     "meta.user_id our account, meta.external_message_id Avito's message)",
    "timestamp_wrong": "the normalized message's timestamp is not the moment Avito says the message was written (a "
                       "unit or a time zone mixed up)",
    "order_broken": "messages of one chat reach n8n in another order than the customer wrote them",
    "health_blind": "/health says healthy while the gateway cannot work (Avito refuses it) or messages are not "
                    "reaching n8n",
    "stays_broken": "once Avito lets the gateway in again, it does not work again within the check's time",
    "send_failed": "a plain send through the gateway does not arrive as documented",
    "secret_leaked": "a piece (8+ characters) of an Avito token or secret appears in an answer or header",
    "api_open_without_key": "started without API_KEY, the gateway serves /api/* to anyone",
    "api_key_not_enforced": "an /api/* operation answers without a valid X-API-Key",
    "cors_wildcard_credentials": "CORS lets any origin call the API with credentials",
    "validation_not_spec_body": "a bad request gets 422 or another shape instead of SPEC's 400 {success: false, error}",
    "not_implemented": "an operation of the gateway API answers 404 (not implemented)",
    "contract_violation": "an answer breaks the gateway contract (status code or body)",
    "health_not_healthy": "/health does not say healthy on a working stack",
    "not_exercised": "the scenario's fault never hit the request it was written for: nothing was tested",
    "workflow_failed": "an n8n workflow execution failed (the report names the workflow, the node and n8n's message)",
    "workflow_send_refused": "BAT OUT Avito's call to the gateway was refused (e.g. no X-API-Key): the answer never "
                             "reached Avito",
    "workflow_dropped_message": "a message n8n received never reached the Universal Batcher, and no rejection was "
                                "recorded (a workflow stopped it silently)",
    "voice_not_transcribed": "BAT IN did not download and transcribe a voice message: its words never reach the AI",
    "no_answer_in_time": "the gateway gave no complete answer within the request deadline (--request-timeout, 10 s)",
    "answer_too_large": "an answer of the gateway was larger than the cap (--max-answer-bytes, 10 MiB)",
    "connection_broken": "the gateway closed a connection without a complete answer",
    "gateway_crashed": "the gateway died (or stopped accepting connections) during the scenario",
    "bypasses_gateway": "a workflow calls Avito's Messenger API itself instead of sending through the gateway",
    "token_in_workflow": "a workflow asks Avito for tokens, keeps them (Redis) or sets Avito's Authorization itself",
    "token_without_client_credentials": "a /token request without client_id and client_secret (Avito refuses it)",
    "sql_interpolation": "a Postgres node builds its query text from {{ }} expressions: an apostrophe breaks it",
    "history_row_wrong": "the reply's messages_history row is not SPEC's (message_type 'operator', channel 'avito', "
                         "tenant and appeal)",
    "raw_payload_expected": "BAT IN reads Avito's raw webhook (payload.value), not the gateway's normalized message",
    "missing_subworkflow": "a workflow calls a sub-workflow that is not in the set (by id, from the list, URL or file)",
    "unclassified": "a check failed that has no defect class of its own; read the error",
}

#: Codes a wire anomaly proves by itself: when the first anomalous hop shows one, it is the failure's root cause.
ROOT_CAUSES = frozenset({"token_basic_auth", "token_request_refused", "wrong_api_version", "send_without_type",
                         "probe_not_200"})


class Defect(AssertionError):
    """A check failed because the gateway has this defect (``code`` is one of :data:`CATALOGUE`)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CATALOGUE:
            raise ValueError(f"unknown defect code {code!r}")
        super().__init__(f"[{code}] {message}")
        self.code = code


def expect(condition: object, code: str, message: str) -> None:
    """Raise :class:`Defect` ``code`` unless ``condition`` holds."""
    if not condition:
        raise Defect(code, message)


def describe(code: str) -> str:
    return CATALOGUE.get(code, code)
