"""Notification: turns matches into alerts for the workers involved and serves them."""
