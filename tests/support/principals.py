"""X-MS-CLIENT-PRINCIPAL values as App Service Authentication writes them, for tests and local calls."""
from __future__ import annotations

import base64
import json


def encode_client_principal(name: str, roles: list[str] | tuple[str, ...] = (), auth_type: str = "aad",
                            role_type: str = "roles", name_type: str = "preferred_username") -> str:
    claims = [{"typ": name_type, "val": name}] + [{"typ": role_type, "val": role} for role in roles]
    document = {"auth_typ": auth_type, "name_typ": name_type, "role_typ": role_type, "claims": claims}
    return base64.b64encode(json.dumps(document).encode()).decode()
