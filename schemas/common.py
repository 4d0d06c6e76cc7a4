"""Building blocks shared by every record model.

Rules stated once here:

* Every record checks the type of each known field: a number is never accepted where a string
  is expected. The input records (customers, incident and ticket events, and the API bodies:
  ``InputRecord``) refuse an unknown field, naming it ("strict at the door": a misspelt
  ``mesage`` is an error, not a message silently lost); the records the project writes
  (``Record``) ignore unknown fields.
* Ids are non-empty strings of at most 256 bytes of UTF-8, without control characters and
  without surrounding whitespace (they become Kafka keys and parts of Message-IDs).
* One-line texts (names, subjects, titles, components, regions) have control characters
  rejected, so they can never inject a header line; surrounding whitespace is stripped.
* Texts have length limits (``schemas/limits.py``, the one place they are stated): a title
  (per locale), a message (per locale), a name, a ticket subject, a label. Over the limit is
  an error naming the field, never a cut text.
* Timestamps are RFC 3339 strings (or aware ``datetime`` objects) with a UTC offset; naive,
  impossible or numeric timestamps are rejected. They keep the offset they were given.
* Locales are ``ja`` or ``en``; anything else falls back to ``en``.
* Time zones are IANA names that zoneinfo can load.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Any

import email_validator
import functools
import sys
import pydantic
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints, WrapValidator
from pydantic_core import PydanticCustomError

from core.vocabulary import DEFAULT_LOCALE, LOCALES  # the records' locales (re-exported)

from .limits import MAX_COMMENT_CHARS, MAX_ID_BYTES, MAX_LABEL_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_SUBJECT_CHARS, MAX_TITLE_CHARS

__all__ = [
    "Comment",
    "Email",
    "Id",
    "Label",
    "Line",
    "LocalizedLine",
    "LocalizedText",
    "Message",
    "Name",
    "Subject",
    "Title",
    "InputRecord",
    "Record",
    "RecordError",
    "Text",
    "Timestamp",
    "Timezone",
    "describe_validation_error",
    "localize",
    "normalize_locale",
    "validate_email",
    "validate_timezone",
]

DEFAULT_TIMEZONE = "UTC"
NAIVE_TIMESTAMP_MESSAGE = "timestamp needs a UTC offset, e.g. 2026-11-25T10:00:00+09:00"

# C0 and C1 controls, DEL and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# the same, but line feeds and tabs (a comment may span lines)
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class Record(BaseModel):
    """Base of every record: unknown fields are ignored, known ones are type-checked."""

    model_config = ConfigDict(extra="ignore")


class InputRecord(Record):
    """Base of every input record and API body: an unknown field is refused, naming it."""

    model_config = ConfigDict(extra="forbid")


UNKNOWN_FIELD = "unknown field"


class RecordError(ValueError):
    """A record that cannot be used: ``field`` is the dotted path of the first bad field
    (None when the record as a whole is bad), ``reason`` says why; ``str()`` is one line."""

    def __init__(self, reason: str, field: str | None = None, message: str | None = None):
        self.field = field
        self.reason = reason
        super().__init__(message or (f"{field}: {reason}" if field else reason))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _error_text(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return UNKNOWN_FIELD
    msg = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return " ".join(_lower_first(msg).split())  # one line, whatever the message held


def _error_path(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"])


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """One line naming every failing field: ``services.0.region: field required; timezone: ...``."""
    parts = []
    for error in exc.errors(include_url=False):
        path, text = _error_path(error), _error_text(error)
        parts.append(f"{path}: {text}" if path else text)
    return "; ".join(parts)


def record_error_from(exc: pydantic.ValidationError) -> RecordError:
    """The ``RecordError`` for a validation failure: first field and reason, every error in the message."""
    first = exc.errors(include_url=False)[0]
    return RecordError(_error_text(first), field=_error_path(first) or None, message=describe_validation_error(exc))


# --- strings -------------------------------------------------------------------------------


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("control_characters", "control characters (such as line breaks) are not allowed")
    return value


def _too_long(length: int, limit: int, locale: str | None = None) -> PydanticCustomError:
    where = f" ({locale!r} text)" if locale is not None else ""
    return PydanticCustomError("too_long", "too long{where}: {length} characters, at most {limit}",
                               {"where": where, "length": f"{length:,}", "limit": f"{limit:,}"})


def _max_chars(limit: int):
    """At most ``limit`` characters (after stripping, for the stripped types); the JSON Schema
    says ``maxLength`` (the check is ours, so that its error reads like the others)."""

    def check(value: str) -> str:
        if len(value) > limit:
            raise _too_long(len(value), limit)
        return value

    return AfterValidator(check), Field(json_schema_extra={"maxLength": limit})


def _id(value: str) -> str:
    if value != value.strip():
        raise PydanticCustomError("id_whitespace", "ids cannot start or end with whitespace")
    if len(value.encode()) > MAX_ID_BYTES:
        # ids travel inside Message-IDs and signed links, whose lines are limited
        raise PydanticCustomError("id_too_long", "ids are at most {limit} bytes of UTF-8", {"limit": MAX_ID_BYTES})
    return _no_control(value)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "cannot be blank")
    return value


Id = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_BYTES), AfterValidator(_id)]
"""A record id (customer, incident, event, ticket, notice)."""

Line = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_no_control)]
"""One line of text, stripped, non-empty, no control characters."""

Label = Annotated[Line, *_max_chars(MAX_LABEL_CHARS)]
"""A component, region or tier name (``Line``, at most ``MAX_LABEL_CHARS`` characters)."""

Name = Annotated[Line, *_max_chars(MAX_NAME_CHARS)]
"""A customer's, contact's or requester's name (``Line``, at most ``MAX_NAME_CHARS`` characters)."""

Subject = Annotated[Line, *_max_chars(MAX_SUBJECT_CHARS)]
"""A ticket's subject (``Line``, at most ``MAX_SUBJECT_CHARS`` characters)."""

Text = Annotated[str, Strict(), AfterValidator(_not_blank)]
"""Free text that may span lines (messages, comments), shown as written; must not be blank."""


def _lines_only(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise PydanticCustomError("control_characters", "control characters other than line feeds and tabs "
                                  "are not allowed")
    return value


Comment = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1),
                    AfterValidator(_lines_only), *_max_chars(MAX_COMMENT_CHARS)]
"""A feedback comment: text that may span lines (``\\n``, no ``\\r``), stripped, non-empty, at most
``MAX_COMMENT_CHARS`` characters."""


# --- localized text ------------------------------------------------------------------------


def _localized(single_line: bool, limit: int | None = None):
    def check(value: Any) -> Any:
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, dict) and value:
            if not all(isinstance(k, str) and k.strip() for k in value):
                raise PydanticCustomError("localized_text", "locale codes must be non-empty strings")
            if not all(isinstance(v, str) for v in value.values()):
                raise PydanticCustomError("localized_text", "every translation must be a string")
            texts = list(value.values())
        else:
            raise PydanticCustomError(
                "localized_text", "expected a non-empty string or an object of texts by locale, e.g. {\"en\": \"...\"}"
            )
        for text in texts:
            _not_blank(text)
            if single_line:
                _no_control(text)
        if limit is not None:
            items = [(None, value)] if isinstance(value, str) else list(value.items())
            for locale, text in items:
                if len(text) > limit:
                    raise _too_long(len(text), limit, locale)
        return value

    return BeforeValidator(check)


LocalizedText = Annotated[str | dict[str, str], _localized(single_line=False)]
"""Either one string or an object of strings keyed by locale code (``{"en": ..., "ja": ...}``);
never empty, no blank translation."""

LocalizedLine = Annotated[str | dict[str, str], _localized(single_line=True)]
"""``LocalizedText`` that must also be a single line."""

def _bounded_localized(limit: int):
    """The localized shape with ``maxLength`` in its JSON Schema (``_localized`` checks it first)."""
    bounded = Annotated[str, Field(max_length=limit)]
    return bounded | dict[str, bounded]


Title = Annotated[_bounded_localized(MAX_TITLE_CHARS), _localized(single_line=True, limit=MAX_TITLE_CHARS)]
"""An incident title: ``LocalizedLine`` with at most ``MAX_TITLE_CHARS`` characters per locale
(it goes into every notice's Subject)."""

Message = Annotated[_bounded_localized(MAX_MESSAGE_CHARS), _localized(single_line=False, limit=MAX_MESSAGE_CHARS)]
"""An incident message: ``LocalizedText`` with at most ``MAX_MESSAGE_CHARS`` characters per locale."""


def _language(code: str) -> str:
    return code.strip().lower().replace("_", "-").split("-")[0]


def localize(text: LocalizedText | None, locale: str, fallback: str = "en") -> str:
    """The text for ``locale``: that locale (``ja-JP`` matches ``ja``), else ``fallback``,
    else the first translation, else ``""``."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    for wanted in (locale, fallback):
        if wanted in text:
            return text[wanted]
        for key, value in text.items():
            if _language(key) == _language(wanted):
                return value
    return next(iter(text.values()), "")


def normalize_locale(v: Any) -> str:
    """``ja`` or ``en``: case-insensitive, region ignored (``ja-JP`` -> ``ja``); anything else -> ``en``."""
    if isinstance(v, str):
        language = _language(v)
        if language in LOCALES:
            return language
    return DEFAULT_LOCALE


# --- time ----------------------------------------------------------------------------------


def _timestamp(value: Any, handler) -> datetime:
    if not isinstance(value, (str, datetime)):
        raise PydanticCustomError("timestamp_type", "expected an RFC 3339 timestamp string, e.g. 2026-11-25T10:00:00+09:00")
    try:
        return handler(value)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        if error["type"] == "timezone_aware":
            raise PydanticCustomError("timestamp_naive", NAIVE_TIMESTAMP_MESSAGE) from None
        reason = (error.get("ctx") or {}).get("error") or _error_text(error)
        raise PydanticCustomError("timestamp", "invalid timestamp ({reason})", {"reason": str(reason)}) from None


Timestamp = Annotated[AwareDatetime, WrapValidator(_timestamp)]
"""An aware datetime; serialized as RFC 3339 with its offset (``Z`` for UTC)."""


def validate_timezone(name: Any) -> str:
    """The IANA zone name, checked with zoneinfo; raises ``ValueError`` naming an unknown zone."""
    if not isinstance(name, str):
        raise PydanticCustomError("timezone", "timezone must be an IANA name such as Asia/Tokyo")
    if not _known_zone(name):
        raise PydanticCustomError("timezone", "unknown timezone {zone}", {"zone": repr(name)})
    return name


@functools.lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    """Whether zoneinfo can load ``name``; remembered (zoneinfo's own cache keeps only a few
    zones, and loading one from its file cost a tenth of a customer's validation)."""
    try:
        if name in ("localtime", "posixrules"):  # machine-specific files, not IANA zones
            raise zoneinfo.ZoneInfoNotFoundError(name)
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _timezone_or_default(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIMEZONE
    return validate_timezone(value.strip() if isinstance(value, str) else value)


Timezone = Annotated[str, BeforeValidator(_timezone_or_default)]
"""An IANA zone name; null or blank means ``UTC``."""


# --- email ---------------------------------------------------------------------------------

# The library's domain check is most of an address's cost (34 of 39 µs measured: IDNA and the
# special-use rules) and a pure function of the domain text and two fixed options; customers
# share few domains, so it is remembered per domain (its result is only read): an address
# check went from 39 to 15 µs, which matters when a worker loads a million customers at start.
_email_validator_impl = sys.modules["email_validator.validate_email"]
_email_validator_impl.validate_email_domain_name = functools.lru_cache(maxsize=1 << 16)(
    _email_validator_impl.validate_email_domain_name)


# Most addresses are plain: an ASCII dot-atom before a single @-sign and an ASCII host name after
# it. For those the library's result is known without its character-by-character parsing (most of
# the 15 µs left): the local part as given (lower-cased when it is one of RFC 2142's mailbox names),
# the remembered domain check, and the library's three length checks. Anything else, and a plain
# address that any of those refuses, goes through the library, which gives the error's wording.
_PLAIN_ADDRESS = re.compile(r"([a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*)"
                            r"@([a-zA-Z0-9.\-]+)\Z")
_CASE_INSENSITIVE_MAILBOXES = frozenset(email_validator.rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES)


def _plain_email(address: str) -> str | None:
    """``validate_email(address).ascii_email`` (default options) for a plain address that it
    accepts; None when the library must decide."""
    match = _PLAIN_ADDRESS.match(address)
    if match is None or email_validator.STRICT or email_validator.TEST_ENVIRONMENT:
        return None
    local, domain = match.groups()
    try:
        info = _email_validator_impl.validate_email_domain_name(
            domain, test_environment=False, globally_deliverable=email_validator.GLOBALLY_DELIVERABLE)
    except email_validator.EmailNotValidError:
        return None
    if local.lower() in _CASE_INSENSITIVE_MAILBOXES:
        local = local.lower()
    ascii_email = local + "@" + info["ascii_domain"]
    limit = email_validator.rfc_constants.EMAIL_MAX_LENGTH
    if len(address) > limit or len(ascii_email) > limit or len((local + "@" + info["domain"]).encode()) > limit:
        return None
    return ascii_email


def validate_email(value: Any) -> str:
    """The normalized ASCII address: domain lower-cased and IDNA-encoded (``bücher.example`` ->
    ``xn--bcher-kva.example``), no DNS lookup. A non-ASCII local part needs SMTPUTF8, which
    the pipeline does not use: such an address is invalid input rather than a lost notice."""
    if not isinstance(value, str):
        raise PydanticCustomError("email", "email must be a string")
    value = value.strip()
    plain = _plain_email(value)
    if plain is not None:
        return plain
    try:
        result = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise PydanticCustomError("email", "invalid email address ({reason})", {"reason": str(exc)}) from None
    if result.ascii_email is None:
        raise PydanticCustomError("email", "addresses with non-ASCII characters before the @ are not supported")
    return result.ascii_email


Email = Annotated[str, BeforeValidator(validate_email), Field(json_schema_extra={"format": "email"})]
