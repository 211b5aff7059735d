"""The visitor's subject and address reach the reader as typed, RFC 2047 look-alikes included.

Each mail goes through a real SMTP server and is read back with the email package's default policy,
which decodes encoded-words as mail readers do.
"""

import email.policy
import re
from email.headerregistry import HeaderRegistry

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relieve_app.contact.message import BOUNDARY, ContactMessage, encoded_words, keeping_header_classes, plain
from tests.contact.test_mail import SENT, make_job, send

pytestmark = pytest.mark.timeout(300)

SUBJECTS = [
    "=?utf-8?b?SGVsbG8gQWRtaW4=?=",
    "=?utf-8?q?x=0D=0ABcc:_evil@evil.example?=",
    "héllo =?utf-8?q?a?= x",
    "=?iso-8859-1?q?caf=E9?= and =?utf-8?b?w6k=?=",
    "prefix=?utf-8?q?glued?=suffix",
    "a ?= b =? c",
    "Question about relieve",
    "Ünïcödé 日本語 emoji 🎉 mixed",
    "w" * 200,
    "word " * 40 + "x" * 120,
]
ADDRESSES = [
    "=?utf-8?q?Bob?=@example.com",
    "=?utf-8?q?evil=40attacker.example?=@example.com",
    '"=?utf-8?q?Bob?="@example.com',
    '"a\\"=?b?="@example.com',
    "plain.visitor@example.com",
]


def received(sink):
    """The last mail the sink got, parsed from its bytes with the default policy, as a reader would."""
    raw = sink.wait_for(1) and sink.envelopes[-1].original_content
    return email.message_from_bytes(raw, policy=email.policy.default)


def local_part(address):
    local = address.rpartition("@")[0]
    if local.startswith('"'):
        return local[1:-1].replace('\\"', '"')
    return local


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subject_reaches_the_reader_as_typed(mail, smtp_sink, subject):
    assert send(make_job(subject=subject)) == SENT
    message = received(smtp_sink)
    assert str(message["Subject"]) == subject
    assert message["Bcc"] is None
    assert smtp_sink.envelopes[-1].rcpt_tos == ["me@example.com"]


@pytest.mark.parametrize("address", ADDRESSES)
def test_reply_to_is_the_address_typed(mail, smtp_sink, address):
    assert send(make_job(emitter=address)) == SENT
    (reply_to,) = received(smtp_sink)["Reply-To"].addresses
    assert (reply_to.username, reply_to.domain) == (local_part(address), "example.com")


def test_the_plain_subjects_stay_readable_on_the_wire(mail, smtp_sink):
    send(make_job(subject="Question about relieve"))
    send(make_job(subject="=?utf-8?b?SGVsbG8gQWRtaW4=?="))
    first, second = (envelope.original_content for envelope in smtp_sink.envelopes)
    assert b"Subject: Question about relieve\r\n" in first
    assert b"SGVsbG8gQWRtaW4" not in second  # not the typed text: an encoding of it


# Text a reader could mistake for encoded-words, non-ASCII, and words too long for one line.
subjects = st.lists(
    st.one_of(
        st.sampled_from(["=?", "?=", "=?utf-8?q?", "=?utf-8?b?", "?q?", "=0D=0A", "_", " ", "  ", "\u00a0"]),
        st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30),
        st.text("abcdefghij", min_size=60, max_size=300),
    ),
    min_size=1,
    max_size=8,
).map(lambda words: "".join(words).strip()[:255] or "x")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(subject=subjects)
def test_any_one_line_subject_reaches_the_reader_as_typed(mail, smtp_sink, subject):
    smtp_sink.clear()
    assert send(make_job(subject=subject)) == SENT
    assert str(received(smtp_sink)["Subject"]) == subject


@given(text=subjects)
def test_encoded_words_fit_a_line_and_plain_text_has_nothing_to_decode(text):
    assert all(len(line) <= 78 - len("Subject: ") for line in encoded_words(text).split("\n"))
    if plain(text):
        assert "=?" not in text and text.isascii()


class StockHeaders(HeaderRegistry):
    """The stock registry, under a name keeping_header_classes leaves alone."""


def contact_message(subject="Question", body="text"):
    message = ContactMessage(
        subject=subject,
        body=body,
        from_email="site@example.com",
        to=["me@example.com"],
        reply_to=["v@example.org"],
    )
    message.attach_alternative("<p>text</p>", "text/html")
    return message


def test_each_header_name_gets_one_class_for_every_mail():
    first, second = (contact_message().message(policy=email.policy.SMTP) for _ in range(2))
    for name in ("From", "To", "Reply-To", "Subject", "Content-Type"):
        assert type(first[name]) is type(second[name]), name


def test_a_header_every_mail_repeats_is_parsed_once_and_its_own_ones_each_time():
    first, second = (contact_message().message(policy=email.policy.SMTP) for _ in range(2))
    for name in ("From", "To", "Reply-To", "MIME-Version"):
        assert first[name] is second[name], name
    assert first["Message-ID"] is not second["Message-ID"]
    assert first.get_payload(0)["Content-Type"] is second.get_payload(0)["Content-Type"]


def test_a_kept_header_is_folded_once_for_each_form_of_line():
    registry = keeping_header_classes(email.policy.SMTP).header_factory
    stock = HeaderRegistry()
    value = ", ".join(f"reader{n} <reader{n}@example.com>" for n in range(4))
    header = registry("To", value)
    assert header.fold(policy=email.policy.SMTP) is header.fold(policy=email.policy.SMTP)
    for policy in (email.policy.SMTP, email.policy.default, email.policy.SMTP.clone(max_line_length=40)):
        assert header.fold(policy=policy) == stock("To", value).fold(policy=policy)
    assert header.fold(policy=email.policy.SMTP) != header.fold(policy=email.policy.default)


def test_the_parsed_headers_kept_are_bounded():
    registry = keeping_header_classes(email.policy.SMTP).header_factory
    for n in range(3 * registry.KEPT_VALUES):
        contact_message(f"Question {n}").message(policy=email.policy.SMTP).as_bytes()
    assert registry.parsed.cache_info().currsize == registry.KEPT_VALUES


def test_a_policy_with_a_header_factory_of_its_own_is_left_as_it_is():
    own = email.policy.SMTP.clone(header_factory=StockHeaders())
    assert keeping_header_classes(own) is own
    first, second = (contact_message().message(policy=own) for _ in range(2))
    assert type(first["To"]) is not type(second["To"])  # the stock registry's way


@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_kept_classes_write_the_mail_the_stock_ones_do(subject):
    """Byte for byte, but for the Date, the Message-ID and the MIME boundary, which change each time."""
    changing = re.compile(rb"(Date|Message-ID): [^\r\n]*|={15}\w+==")
    stock = email.policy.SMTP.clone(header_factory=StockHeaders())
    kept = contact_message(subject).message(policy=email.policy.SMTP).as_bytes()
    made = contact_message(subject).message(policy=stock).as_bytes()
    assert changing.sub(b"", kept) == changing.sub(b"", made)


def test_every_mail_has_the_processs_boundary_parsed_once():
    first, second = (contact_message().message(policy=email.policy.SMTP) for _ in range(2))
    assert first.get_boundary() == BOUNDARY and first["Content-Type"] is second["Content-Type"]
    read = email.message_from_bytes(first.as_bytes(), policy=email.policy.default)
    assert [part.get_content().replace("\r\n", "\n") for part in read.iter_parts()] == [
        "text\n",
        "<p>text</p>\n",
    ]


def test_a_body_that_holds_the_boundary_gets_another_and_arrives_whole():
    body = f"--{BOUNDARY}\n\n--{BOUNDARY}--\nafter"
    message = contact_message(body=body).message(policy=email.policy.SMTP)
    read = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert read.get_boundary() not in (None, BOUNDARY)
    assert [part.get_content().replace("\r\n", "\n") for part in read.iter_parts()] == [
        f"{body}\n",
        "<p>text</p>\n",
    ]


def test_a_mail_with_an_attachment_leaves_its_nested_boundaries_to_email():
    message = contact_message()
    message.attach("notes.txt", "notes", "text/plain")
    read = email.message_from_bytes(message.message(policy=email.policy.SMTP).as_bytes())
    boundaries = [part.get_boundary() for part in read.walk() if part.is_multipart()]
    assert len(boundaries) == 2 and len(set(boundaries)) == 2 and BOUNDARY not in boundaries
