"""The web side's fixtures (tests/web_fixtures.py) for the tests of relieve_app/monitor."""

from tests.web_fixtures import *  # noqa: F403
