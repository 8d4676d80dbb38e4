"""callgate: a compliance gate for outbound calls, enforcing French telemarketing rules."""

__version__ = "0.1.0"
