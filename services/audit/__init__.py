"""Audit: the append-only access log of every service."""
