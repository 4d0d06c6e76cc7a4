"""Signed unsubscribe links: one valid token per (customer, recipient); anything else is None, never an error."""

from __future__ import annotations

import base64

import pytest

from domain.ids import contact_key
from domain.links import unsubscribe_token, verify_unsubscribe

KEY = b"test-secret"
RECIPIENT = contact_key("ops@example.jp")
STANDARD = str.maketrans("-_", "+/")


def token_for(customer_id: str = "c-42") -> str:
    return unsubscribe_token(KEY, customer_id, RECIPIENT)


@pytest.mark.parametrize("customer_id", ["c-42", "c", "cu", "cus", "顧客-1", "x" * 256])
def test_a_token_verifies_to_what_it_signed(customer_id):
    assert verify_unsubscribe(KEY, token_for(customer_id)) == (customer_id, RECIPIENT)


def test_tokens_issued_before_the_strict_check_still_verify():
    # the format of the links already sent: unpadded URL-safe base64 of the id, the contact key,
    # 16 signature bytes as 22 characters
    cid, recipient, signature = token_for("c-42").split(".")
    assert cid == base64.urlsafe_b64encode(b"c-42").decode().rstrip("=")
    assert recipient == RECIPIENT and len(signature) == 22 and "=" not in signature


def test_another_key_or_an_altered_field_does_not_verify():
    token = token_for()
    cid, recipient, signature = token.split(".")
    assert verify_unsubscribe(b"other-key", token) is None
    assert verify_unsubscribe(KEY, token[:-2] + ("xx" if token[-2:] != "xx" else "yy")) is None
    other = base64.urlsafe_b64encode(b"c-43").decode().rstrip("=")
    assert verify_unsubscribe(KEY, f"{other}.{recipient}.{signature}") is None
    assert verify_unsubscribe(KEY, f"{cid}.{contact_key('dev@example.jp')}.{signature}") is None


@pytest.mark.parametrize("alter", [
    lambda c, r, s: f"{c}=.{r}.{s}",              # padding added to the customer field
    lambda c, r, s: f"{c}==.{r}.{s}",
    lambda c, r, s: f"{c}.{r}.{s}==",             # padding added to the signature
    lambda c, r, s: f"{c}.{r}.{s}=",
    lambda c, r, s: f"{c[:2]}={c[2:]}.{r}.{s}",   # padding inside a field
    lambda c, r, s: f"{c}!.{r}.{s}",              # a character the decoder would skip
    lambda c, r, s: f"{c}.{r}.{s[:10]} {s[10:]}",
    lambda c, r, s: f"{c}\n.{r}.{s}",
    lambda c, r, s: f"{c.translate(STANDARD)}.{r}.{s.translate(STANDARD)}",  # the standard alphabet
], ids=["cid=", "cid==", "sig==", "sig=", "inner=", "junk", "space", "newline", "std-alphabet"])
def test_altered_base64_does_not_verify(alter):
    # "c-???" encodes to "Yy0_Pz8": its '_' differs in the standard alphabet
    c, r, s = unsubscribe_token(KEY, "c-???", RECIPIENT).split(".")
    assert c == "Yy0_Pz8"
    assert verify_unsubscribe(KEY, f"{c}.{r}.{s}") == ("c-???", RECIPIENT)
    altered = alter(c, r, s)
    assert altered != f"{c}.{r}.{s}"
    assert verify_unsubscribe(KEY, altered) is None


def test_a_non_canonical_encoding_of_the_same_bytes_does_not_verify():
    # "c-42" is 4 bytes: 6 characters whose last one carries 4 unused bits; a lenient decoder
    # reads "Yy00Mh" and "Yy00Mi" (unused bits set) as the same bytes
    cid, recipient, signature = token_for("c-42").split(".")
    assert cid == "Yy00Mg"
    for last in "hijklmnop":
        assert base64.urlsafe_b64decode(cid[:-1] + last + "==") == b"c-42"
        assert verify_unsubscribe(KEY, f"{cid[:-1]}{last}.{recipient}.{signature}") is None
    assert verify_unsubscribe(KEY, f"{cid}.{recipient}.{signature[:-1]}{chr(ord(signature[-1]) ^ 1)}") is None


@pytest.mark.parametrize("token", [
    "", ".", "..", "...", "a.b", "a.b.c.d", "é.é.é", "YY00Mg.é.AAAAAAAAAAAAAAAAAAAAAA",
    "YW.3f9a1c2b04de.ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ", "\udcff.\udcfe.\udcfd", "\x00.\x00.\x00",
    "A" * 100_000, "YW.3f9a1c2b04de." + "A" * 5000,
    "YW.3f9a1c2b04de.AAAA",           # a signature of the wrong length
    "_w.3f9a1c2b04de." + "A" * 22,    # a customer id that is not UTF-8 (0xff)
])
def test_garbage_is_refused_without_an_error(token):
    assert verify_unsubscribe(KEY, token) is None


def test_non_ascii_in_each_field_is_refused():
    cid, recipient, signature = token_for().split(".")
    for altered in (f"{cid}é.{recipient}.{signature}", f"{cid}.{recipient}é.{signature}",
                    f"{cid}.{recipient}.{signature[:-1]}é", f"{cid}.{recipient}.{signature}\u200b"):
        assert verify_unsubscribe(KEY, altered) is None


# -- feedback links and key rotation ---------------------------------------------------------------

from domain.ids import TICKET_PREFIX  # noqa: E402
from domain.links import FeedbackLink, feedback_token, verify_feedback  # noqa: E402


def feedback_for(incident_id: str = "inc-7", customer_id: str = "c-42", recipient: str = RECIPIENT,
                 locale: str = "ja", severity: str = "major", key: bytes = KEY) -> str:
    return feedback_token(key, incident_id, customer_id, recipient, locale, severity)


@pytest.mark.parametrize("incident_id,customer_id,recipient", [
    ("inc-7", "c-42", RECIPIENT), ("障害-1", "顧客-1", RECIPIENT), ("i" * 256, "c" * 256, RECIPIENT),
    ("inc-7", "c-42", TICKET_PREFIX + RECIPIENT),
])
def test_a_feedback_token_names_the_incident_the_customer_the_contact_its_language_and_severity(
        incident_id, customer_id, recipient):
    token = feedback_for(incident_id, customer_id, recipient, "en", "critical")
    assert verify_feedback(KEY, token) == FeedbackLink(incident_id, customer_id, recipient, "en", "critical")
    assert "@" not in token and "/" not in token and "?" not in token and "&" not in token   # a path segment
    assert verify_unsubscribe(KEY, token) is None   # one kind of link never passes for the other


def test_an_altered_or_forged_feedback_token_does_not_verify():
    token = feedback_for()
    iid, cid, recipient, locale, severity, signature = token.split(".")
    assert verify_feedback(b"other-key", token) is None
    other_incident = base64.urlsafe_b64encode(b"inc-8").decode().rstrip("=")
    for altered in (f"{other_incident}.{cid}.{recipient}.{locale}.{severity}.{signature}",
                    f"{cid}.{iid}.{recipient}.{locale}.{severity}.{signature}",          # fields swapped
                    f"{iid}.{cid}.{contact_key('x@example.jp')}.{locale}.{severity}.{signature}",
                    f"{iid}.{cid}.{recipient}.en.{severity}.{signature}",               # another language
                    f"{iid}.{cid}.{recipient}.{locale}.minor.{signature}",              # another severity
                    f"{iid}.{cid}.{recipient}.fr.{severity}.{signature}",
                    f"{iid}.{cid}.{recipient}.{locale}.{severity}.{signature}=",
                    f"{iid}.{cid}.{recipient}.{locale}.{severity}.{signature[:-1]}{'B' if signature[-1] != 'B' else 'C'}",
                    f"{iid}.{cid}.{recipient}.{locale}.{severity}",
                    f"{iid}.{cid}.{recipient}.{locale}.{severity}.{signature}.x",
                    token + "é", "", ".....", "a.b.c.d.e.f", "A" * 100_000, "\udcff" * 6):
        assert verify_feedback(KEY, altered) is None, altered
    # an unsubscribe token is no feedback token
    assert verify_feedback(KEY, token_for()) is None


def test_a_feedback_token_is_made_only_for_a_known_locale_severity_and_recipient_key():
    for bad in (dict(locale="fr"), dict(severity="P1"), dict(recipient="ops@example.jp")):
        with pytest.raises(ValueError):
            feedback_for(**bad)


def test_links_signed_with_an_earlier_secret_still_verify():
    old, new = b"old-secret", b"new-secret"
    feedback, unsubscribe = feedback_for(key=old), unsubscribe_token(old, "c-42", RECIPIENT)
    assert verify_feedback(new, feedback) is None and verify_unsubscribe(new, unsubscribe) is None
    assert verify_feedback((new, old), feedback) == FeedbackLink("inc-7", "c-42", RECIPIENT, "ja", "major")
    assert verify_unsubscribe([new, old], unsubscribe) == ("c-42", RECIPIENT)
    assert verify_feedback((), feedback) is None and verify_unsubscribe([], unsubscribe) is None
