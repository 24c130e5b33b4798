"""Intake gateway: admits partner signals into the matching domain, or dead-letters them."""
