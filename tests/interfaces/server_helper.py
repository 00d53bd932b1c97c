"""A helper module imported by server_basic.py from its own folder."""

HELPER_VALUE = "from-helper"
