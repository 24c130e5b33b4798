"""Code shared by the vroegsignaal services: contracts, settings, Kafka and database plumbing."""
