"""Matching engine: stores registrations and raises matches between organisations."""
