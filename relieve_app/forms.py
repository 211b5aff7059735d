import unicodedata

from django import forms
from django.core.exceptions import ValidationError

from relieve_app.models import MailOutcome

BODY_MIN = 30
BODY_MAX = 20_000
NO_SUBJECT = "No subject"


def validate_single_line(value):
    """A subject becomes a mail header: a line break in it could smuggle in headers of its own."""
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        raise ValidationError(
            "The subject must fit on one line: remove line breaks, tabs and other control characters.",
            code="line_break",
        )


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
        validators=[validate_single_line],
        help_text="One line; leave it empty and we use “No subject”.",
        error_messages={"max_length": "Please keep the subject to %(limit_value)d characters or fewer."},
    )
    body = forms.CharField(
        label="Message",
        min_length=BODY_MIN,
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text=f"{BODY_MIN} to {BODY_MAX:,} characters. Markdown is supported.",
        error_messages={
            "required": "Please write your message.",
            "min_length": (
                "Your message is too short: please write at least %(limit_value)d characters "
                "(it has %(show_value)d)."
            ),
            "max_length": (
                f"Your message is too long: at most {BODY_MAX:,} characters (it has %(show_value)d)."
            ),
        },
    )

    def clean_subject(self):
        return self.cleaned_data["subject"].strip() or NO_SUBJECT
