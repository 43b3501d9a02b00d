"""Planted-defect gateways: our gateway (``avito_gateway``) with one thing broken each, and legitimate variants.

They show the harness catching a bug in one command (``avito-harness doubles``, ``avito-harness run
--gateway-double NAME``). They are gateways, not part of the harness: they import ``avito_gateway`` and never
``avito_harness``; the harness starts them as a process (``python -m avito_doubles``) or by name (``--gateway-app``).
"""

__all__: list[str] = []
