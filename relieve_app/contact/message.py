"""The contact mail as sent: the visitor's subject and address reach the reader as typed.

Mail readers decode RFC 2047 encoded-words (``=?utf-8?b?...?=``) wherever they find them, and
Python's email package writes text that merely looks like one as it is: a subject typed as
``=?utf-8?b?SGVsbG8=?=`` would be read as "Hello", one typed as
``=?utf-8?q?x=0D=0ABcc:_evil@evil.example?=`` as a line break and a Bcc line. The same package
decodes such words inside an address it is given, so the visitor's address would not even be sent
as typed. Such values are written here, in a form every reader decodes back to the typed text.
"""

import base64
import email.policy
import functools
import secrets
import unicodedata
from email.headerregistry import HeaderRegistry

from django.core.mail import EmailMultiAlternatives
from django.utils.encoding import punycode

CHUNK = 39  # UTF-8 bytes per encoded-word: "Subject: " + 64 characters fits a 78-character line


class VerbatimHeader(str):
    """A header value (what a program reading the header gets) with the exact text to write.

    email.policy stores a value that has a `name` as it is, and asks its `fold()` for the wire form.
    """

    def __new__(cls, name, value, wire):
        header = super().__new__(cls, value)
        header.name, header.wire, header.defects = name, wire, ()
        return header

    def fold(self, *, policy):
        return f"{self.name}: {self.wire.replace(chr(10), policy.linesep)}{policy.linesep}"


def refuse_line_breaks(value, what):
    """Encoded, a line break would reach the reader all the same: refuse it as the form does."""
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        raise ValueError(f"the {what} holds a line break or another control character")


def plain(text):
    """Whether email writes `text` as it is and every reader reads it back unchanged."""
    return (
        text.isascii()
        and text.isprintable()
        and "=?" not in text
        and text == text.strip()
        and "  " not in text
        and all(len(word) <= 60 for word in text.split(" "))
    )


def encoded_words(text):
    """`text` as base64 encoded-words, split between characters, one per folded line.

    Readers drop the white space between adjacent encoded-words, so the text comes back whole.
    """
    words, chunk = [], b""
    for char in text:
        data = char.encode()
        if len(chunk) + len(data) > CHUNK:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(word).decode()}?=" for word in words)


def subject_header(subject):
    refuse_line_breaks(subject, "subject")
    return None if plain(subject) else VerbatimHeader("Subject", subject, encoded_words(subject))


def reply_to_header(address):
    """An address whose local part holds "=?" goes out quoted, with its "=" escaped.

    No encoded-word is allowed in an address, and no reader decodes a quoted "\\=?": the escaped
    and the bare local part name the same mailbox. Other addresses are left to Django.
    """
    refuse_line_breaks(address, "reply address")
    local, at, domain = address.rpartition("@")
    local = unquote(local)
    if "=?" not in local or not local.isascii():
        return None
    escaped = "".join(f"\\{char}" if char in '\\"=' else char for char in local)
    return VerbatimHeader("Reply-To", address, f'"{escaped}"{at}{punycode(domain)}')


def unquote(local):
    """The local part a quoted one (`"a\\"b"`) stands for; an unquoted one as it is."""
    if len(local) < 2 or not (local.startswith('"') and local.endswith('"')):
        return local
    chars, escaped = [], False
    for char in local[1:-1]:
        if char == "\\" and not escaped:
            escaped = True
            continue
        chars.append(char)
        escaped = False
    return "".join(chars)


class FoldedOnce:
    """A kept header is written in every mail that repeats it: its wire form, once worked out for a
    policy's line length, line separator and character set (all that email's folding reads), is
    kept with it."""

    def fold(self, *, policy):
        form = (policy.max_line_length, policy.linesep, policy.utf8)
        kept = getattr(self, "_folded", None)
        if kept is None or kept[0] != form:
            kept = self._folded = (form, super().fold(policy=policy))
        return kept[1]


class KeptHeaderClasses(HeaderRegistry):
    """email's registry makes a new class for each header it parses (a subclass of two shared ones,
    which each new class is added to), though the class for a name is the same each time. Made once
    per name instead, a contact mail costs its child a fifth less CPU, and the child holds fewer
    pages of its own (bench/README.md, "Header classes made once").

    Most of a contact mail's headers are also the same in every mail (From, To, MIME-Version, the
    parts' Content-Type and Content-Transfer-Encoding), and were parsed and folded anew in each.
    The parsed header of the last ``KEPT_VALUES`` plain string values is kept and given again, with
    its folded form (``FoldedOnce``): a parsed header is a str nothing changes once it is made, so
    one can stand in many mails (bench/README.md, "Repeated headers parsed once").
    """

    KEPT_VALUES = 32  # a contact mail parses 16 headers, 3 its own (Subject, Date, Message-ID)

    def __init__(self):
        super().__init__()
        self.made = {}
        self.parsed = functools.lru_cache(maxsize=self.KEPT_VALUES)(super().__call__)

    def __getitem__(self, name):
        key = name.lower()
        made = self.made.get(key)
        if made is None:
            stock = super().__getitem__(name)
            made = self.made[key] = type(stock.__name__, (FoldedOnce, stock), {})
        return made

    def __call__(self, name, value):
        if type(value) is str:  # a str subclass may carry more than its text
            return self.parsed(name, value)
        return super().__call__(name, value)


@functools.lru_cache(maxsize=8)
def keeping_header_classes(policy):
    """``policy`` with a KeptHeaderClasses; a policy with a header factory of its own, as it is."""
    if type(getattr(policy, "header_factory", None)) is not HeaderRegistry:
        return policy
    return policy.clone(header_factory=KeptHeaderClasses())


# The MIME boundary of this process's mails: unguessable, and the same in each of them.
BOUNDARY = f"{'=' * 15}{secrets.token_hex(16)}=="


def keep_boundary(msg):
    """Give a multipart mail of plain parts the process's ``BOUNDARY``, unless a part holds it.

    Left without one, email picks a random boundary as it writes each mail, and compiles a regular
    expression to check that no line of the parts is that boundary; the Content-Type that carries
    it is then parsed and folded anew. One boundary for every mail is parsed and folded once (its
    header is kept, ``KeptHeaderClasses``), and a substring test stands in for the check. A
    boundary need only be absent from the parts it separates (RFC 2046). A mail whose parts hold
    it, or with nested multiparts, which each need their own, is left to email.
    """
    if not msg.is_multipart() or msg.get_boundary() is not None:
        return
    for part in msg.get_payload():
        payload = part.get_payload()
        if part.is_multipart() or not isinstance(payload, str) or BOUNDARY in payload:
            return
    msg.set_boundary(BOUNDARY)


class ContactMessage(EmailMultiAlternatives):
    """EmailMultiAlternatives whose Subject and Reply-To carry the visitor's text as typed."""

    def message(self, *, policy=email.policy.default):
        msg = super().message(policy=keeping_header_classes(policy))
        headers = [subject_header(str(self.subject))]
        if len(self.reply_to) == 1:  # Django writes all of them in one header: only one is ours
            headers.append(reply_to_header(str(self.reply_to[0])))
        for header in headers:
            if header is not None:
                msg.replace_header(header.name, header)
        keep_boundary(msg)
        return msg
