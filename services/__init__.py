"""The four vroegsignaal services. Each imports only `shared`, never another service."""
