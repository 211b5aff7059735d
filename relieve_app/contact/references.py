"""The visitor's reference to a message: unguessable, so it can stand in a URL without a login.

A real reference is 32 random URL-safe characters. A decoy, given to a bot that filled the honeypot,
looks the same: 16 random characters and 16 of their HMAC under SECRET_KEY. Only the server can tell
one from the other, so pages answer a decoy as if its message were queued, and a bot learns nothing.
"""

import base64
import secrets

from django.utils.crypto import constant_time_compare, salted_hmac

LENGTH = 32
HALF = LENGTH // 2
SALT = "relieve_app.contact.references.decoy"


def new():
    return secrets.token_urlsafe(LENGTH * 3 // 4)


def decoy():
    head = new()[:HALF]
    return head + _signature(head)


def is_decoy(reference):
    head, tail = reference[:HALF], reference[HALF:]
    return len(reference) == LENGTH and constant_time_compare(tail, _signature(head))


def _signature(head):
    digest = salted_hmac(SALT, head, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).decode()[:HALF]
