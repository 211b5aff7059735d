import unicodedata

from django import forms
from django.core.exceptions import ValidationError

from relieve_app.models import MailOutcome

BODY_MIN = 30
BODY_MAX = 20_000
NO_SUBJECT = "No subject"
HONEYPOT = "website"


def validate_single_line(value):
    """Subject and emitter become mail headers: a line break in one could smuggle in headers of its own.

    Not only CR and LF: VT, FF, NEL and U+2028 break lines for str.splitlines(), and the email
    validator lets some through (`"a\\x0bb"@example.com`, `ada@exa\\u2028mple.com`).
    """
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        raise ValidationError(
            "This must fit on one line: remove line breaks, tabs and other control characters.",
            code="line_break",
        )


def validate_text(value):
    """JSON can carry lone surrogates ("\\ud800"): they are not text, and no database or mail encodes them."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError(
            "This contains characters that are not text (unpaired UTF-16 surrogates).", code="surrogate"
        ) from None


class CountedCharField(forms.CharField):
    """A CharField whose length errors write the counts as "20,001", like the limit beside them."""

    def run_validators(self, value):
        try:
            super().run_validators(value)
        except ValidationError as exc:
            for error in exc.error_list:
                if error.params:
                    error.params = {
                        key: f"{number:,}" if isinstance(number, int) else number
                        for key, number in error.params.items()
                    }
            raise


class ContactForm(forms.Form):
    emitter = forms.EmailField(
        label="Your email address",
        max_length=MailOutcome._meta.get_field("emitter").max_length,
        help_text="We reply to this address. It is not shown to anyone else.",
        error_messages={
            "required": "Please tell us your email address, so we can reply.",
            "invalid": "This does not look like an email address, e.g. ada@example.com.",
            "max_length": "This address is too long: at most %(limit_value)d characters.",
        },
    )
    subject = forms.CharField(
        label="Subject",
        required=False,
        max_length=MailOutcome._meta.get_field("subject").max_length,
        strip=False,  # strip() would quietly remove the line breaks we must refuse
        validators=[validate_single_line, validate_text],
        help_text="One line; leave it empty and we use “No subject”.",
        error_messages={"max_length": "Please keep the subject to %(limit_value)d characters or fewer."},
    )
    body = CountedCharField(
        label="Message",
        min_length=BODY_MIN,
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 12}),
        validators=[validate_text],
        help_text=f"{BODY_MIN} to {BODY_MAX:,} characters. Markdown is supported.",
        error_messages={
            "required": "Please write your message.",
            "min_length": (
                "Your message is too short: please write at least %(limit_value)s characters "
                "(it has %(show_value)s)."
            ),
            "max_length": (
                "Your message is too long: at most %(limit_value)s characters (it has %(show_value)s)."
            ),
        },
    )

    # A trap for bots, which fill every field: people never see it (contact.html hides it).
    website = forms.CharField(
        label="Leave this field empty",
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    def clean_emitter(self):
        """Here, not as validators: only an address the email check accepted needs these, and a visitor
        gets one message, not two."""
        emitter = self.cleaned_data["emitter"]
        validate_single_line(emitter)
        validate_text(emitter)
        return emitter

    def clean_subject(self):
        return self.cleaned_data["subject"].strip() or NO_SUBJECT

    def shown_fields(self):
        return [field for field in self if field.name != HONEYPOT]

    @property
    def honeypot(self):
        return self[HONEYPOT]

    def is_spam(self):
        """Whether the hidden field was filled; only meaningful once the form is valid."""
        return bool(self.cleaned_data.get(HONEYPOT))
