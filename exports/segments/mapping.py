"""Profile values to ActiveCampaign contact fields, with validation a person can act on."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

# Our mapping names -> ActiveCampaign bulk_import field names (snake_case there).
CONTACT_FIELDS = {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone"}
_MAX_LENGTH = 255  # ActiveCampaign's text columns; longer values would be cut or refused


def normalise_email(raw: str) -> str:
    """Trim and lower-case, so that reformatting upstream never makes the same person a new contact."""
    return raw.strip().lower()


def to_contact(values: dict[str, str]) -> tuple[dict[str, str] | None, str | None]:
    """(contact, None) for a valid row, (None, reason) otherwise. Empty optional values are left out."""
    email = normalise_email(values.get("email") or "")
    if not email:
        return None, "email is empty"
    try:
        # Syntax only: a DNS look-up per row would be slow and is ActiveCampaign's business.
        validate_email(email, check_deliverability=False, allow_smtputf8=False,
                       allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError as error:
        return None, f"email is not valid: {error}"
    contact = {"email": email}
    for field, name in CONTACT_FIELDS.items():
        if field == "email":
            continue
        value = (values.get(field) or "").strip()
        if not value:
            continue
        if len(value) > _MAX_LENGTH:
            return None, f"{field} is longer than {_MAX_LENGTH} characters"
        contact[name] = value
    return contact, None
