"""The VPN gate's services, one module per area; import them from here.

- ``integrations``: integrations and RADIUS clients (API-03), and the integration a request names;
- ``auth_api``: the signed Duo Auth API request (API-01, API-02), ``preauth``, ``auth``, async answers;
- ``passcode``: the hot path of a passcode check, beside the general path it hands the rest to;
- ``people``: whether a person may use the VPN and which of their devices it can use;
- ``radius``: answers to RADIUS Access-Requests (API-05, API-08), and the purge of spent state.
"""

from .auth_api import (
    ASYNC_ANSWER_KEPT,
    BAD_DATE,
    BAD_SIGNATURE,
    CODES_SENT,
    DENIED,
    DISABLED,
    INVALID_PARAMS,
    MISSING_CREDENTIALS,
    MISSING_PARAMS,
    NETWORK,
    NOT_ALLOWED_MSG,
    REPLAYED,
    UNKNOWN_INTEGRATION,
    ApiError,
    api_error,
    auth,
    auth_status,
    authenticate,
    preauth,
    record_async,
)
from .integrations import (
    address_allowed,
    create_integration,
    create_radius_client,
    forget_known_integrations,
    integration_for_key,
    new_integration_key,
    new_secret,
    rotate_integration_secret,
    rotate_radius_secret,
    update_integration,
    update_radius_client,
)
from .people import Factors, device_id, may_use_vpn, vpn_factors
from .radius import (
    RADIUS_DENIED,
    RADIUS_PROMPT,
    RadiusAnswer,
    forget_spent_state,
    radius_authenticate,
    radius_client_for,
    radius_secret,
)

__all__ = [
    "ASYNC_ANSWER_KEPT",
    "BAD_DATE",
    "BAD_SIGNATURE",
    "CODES_SENT",
    "DENIED",
    "DISABLED",
    "INVALID_PARAMS",
    "MISSING_CREDENTIALS",
    "MISSING_PARAMS",
    "NETWORK",
    "NOT_ALLOWED_MSG",
    "RADIUS_DENIED",
    "RADIUS_PROMPT",
    "REPLAYED",
    "UNKNOWN_INTEGRATION",
    "ApiError",
    "Factors",
    "RadiusAnswer",
    "address_allowed",
    "api_error",
    "auth",
    "auth_status",
    "authenticate",
    "create_integration",
    "create_radius_client",
    "device_id",
    "forget_known_integrations",
    "forget_spent_state",
    "integration_for_key",
    "may_use_vpn",
    "new_integration_key",
    "new_secret",
    "preauth",
    "radius_authenticate",
    "radius_client_for",
    "radius_secret",
    "record_async",
    "rotate_integration_secret",
    "rotate_radius_secret",
    "update_integration",
    "update_radius_client",
    "vpn_factors",
]
