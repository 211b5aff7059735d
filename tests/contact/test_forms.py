import pytest

from relieve_app.contact.forms import ContactForm

VALID = {"emitter": "ada@example.com", "subject": "Hello", "body": "A message long enough to be sent along."}


def form(**changes):
    return ContactForm({**VALID, **changes})


def codes(bound, field):
    return [error["code"] for error in bound.errors.get_json_data().get(field, [])]


def test_valid_message():
    bound = form()

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data == {**VALID, "website": ""}
    assert not bound.is_spam()


@pytest.mark.parametrize(
    "emitter", ["", "ada", "ada@", "@example.com", "ada@example.com\nBcc: x@example.com"]
)
def test_emitter_must_be_an_email(emitter):
    bound = form(emitter=emitter)

    assert not bound.is_valid()
    assert codes(bound, "emitter") in (["required"], ["invalid"])


@pytest.mark.parametrize(
    "emitter",
    ['"a\x0bb"@example.com', '"a\\\x0bb"@example.com', "ada@exa\u2028mple.com", "ada@exa\u2029mple.com"],
    ids=["vertical-tab-quoted", "escaped-vertical-tab", "line-separator", "paragraph-separator"],
)
def test_emitter_the_email_check_lets_through_still_cannot_break_a_header(emitter):
    bound = form(emitter=emitter)

    assert not bound.is_valid()
    assert codes(bound, "emitter") == ["line_break"]


@pytest.mark.parametrize("field", ["emitter", "subject", "body"])
def test_lone_surrogates_are_refused(field):
    value = {"emitter": "ada@exa\ud800mple.com", "subject": "Hi \udc00", "body": "x" * 40 + "\ud83d"}[field]

    bound = form(**{field: value})

    assert not bound.is_valid()
    assert codes(bound, field) == ["surrogate"]


def test_filled_honeypot_is_valid_but_spam():
    bound = form(website="http://spam.example")

    assert bound.is_valid(), bound.errors
    assert bound.is_spam()


def test_emitter_fits_the_database_column():
    local = "a" * 64
    domain = ".".join(["b" * 60] * 4) + ".com"  # 248 characters, each label within limits

    bound = form(emitter=f"{local}@{domain}")

    assert not bound.is_valid()
    assert "max_length" in codes(bound, "emitter")


@pytest.mark.parametrize(("length", "valid"), [(29, False), (30, True), (20_000, True), (20_001, False)])
def test_body_length_bounds(length, valid):
    bound = form(body="x" * length)

    assert bound.is_valid() is valid
    if not valid:
        assert codes(bound, "body") == ["min_length" if length < 30 else "max_length"]


def test_body_errors_say_what_to_do():
    short = form(body="too short")
    long = form(body="x" * 20_001)

    assert not short.is_valid() and not long.is_valid()
    assert "at least 30 characters" in short.errors["body"][0]
    assert "(it has 9)" in short.errors["body"][0]
    assert "at most 20,000 characters" in long.errors["body"][0]
    assert "(it has 20,001)" in long.errors["body"][0]  # written like the limit beside it


def test_body_is_required():
    bound = form(body="")

    assert not bound.is_valid()
    assert codes(bound, "body") == ["required"]


@pytest.mark.parametrize(
    "subject",
    [
        "Hello\r\nBcc: victim@example.com",
        "Hello\nthere",
        "Hello\rthere",
        "trailing newline\n",
        "vertical\x0btab",
        "form\x0cfeed",
        "file\x1cseparator",
        "group\x1dseparator",
        "record\x1eseparator",
        "next\x85line",
        "line\u2028separator",
        "paragraph\u2029separator",
        "tab\there",
        "nul\x00byte",
        "escape\x1b[31m",
    ],
)
def test_subject_refuses_line_breaks_and_control_characters(subject):
    bound = form(subject=subject)

    assert not bound.is_valid()
    assert "line_break" in codes(bound, "subject")


@pytest.mark.parametrize("subject", ["", "   "])
def test_empty_subject_becomes_no_subject(subject):
    bound = form(subject=subject)

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data["subject"] == "No subject"


def test_missing_subject_becomes_no_subject():
    bound = ContactForm({"emitter": VALID["emitter"], "body": VALID["body"]})

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data["subject"] == "No subject"


def test_subject_is_trimmed_and_keeps_unicode():
    bound = form(subject="  Grüße, ça va? 👋  ")

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data["subject"] == "Grüße, ça va? 👋"


def test_subject_length_cap():
    assert form(subject="s" * 200).is_valid()
    assert codes(form(subject="s" * 201), "subject") == ["max_length"]


def test_labels_and_help_speak_to_people():
    bound = ContactForm()

    assert "Markdown" in bound["body"].help_text
    assert bound["emitter"].label == "Your email address"
    assert not bound.fields["subject"].required
