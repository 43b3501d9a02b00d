"""Why a fake refused a request, as a code: recorded in the journal beside the hint for people.

The judge names defects from these codes and never from the wording of a hint or an error message
(pytest-httpserver's ``difference()`` returns tuples for the same reason): rewording a hint cannot change a
defect code that a ``--json`` report promises never changes.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    TOKEN_BASIC_AUTH = "token_basic_auth"  # /token: client_id and client_secret came as HTTP Basic, not form fields
    NO_AUTHORIZATION = "no_authorization"  # no Authorization header, or no token in it
    NOT_BEARER = "not_bearer"  # an Authorization scheme other than Bearer
    TOKEN_UNKNOWN = "token_unknown"  # a token this Avito never issued
    TOKEN_EXPIRED = "token_expired"  # a token that was Avito's and expired (a test may expire it on purpose)
    TOKEN_NOT_ALLOWED = "token_not_allowed"  # a live token without the scope, or for another account
    OTHER_API_VERSION = "other_api_version"  # an unknown path that Avito serves under another version
    SEND_WITHOUT_TYPE = "send_without_type"  # a send body without "type" beside its text message
    PROBE_REFUSED = "probe_refused"  # the webhook URL did not answer the subscription's {} probe with 200
    VALIDATION_FAILED = "validation_failed"  # a parameter or body field is wrong (the journal names the fields)
