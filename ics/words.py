"""Counted nouns in what ics says: "1 job", "2 jobs", "1,000 steps"."""

from __future__ import annotations

from typing import Optional


def count(n: int, noun: str, plural: Optional[str] = None) -> str:
    """`n noun`, the noun plural unless n is 1 (plural: the noun + "s" unless given); n with
    thousands separators."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def of(done: int, n: int, noun: str) -> str:
    """ "1/1 job", "3/5 jobs": a count of n, the noun agreeing with n."""
    return f"{done:,}/{count(n, noun)}"


def them(items) -> str:
    """ "it" for one item, "them" for more."""
    return "it" if len(items) == 1 else "them"
