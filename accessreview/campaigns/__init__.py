"""Periodic access reviews: definitions, launches, reviewing, close, sign-off and remediation."""
