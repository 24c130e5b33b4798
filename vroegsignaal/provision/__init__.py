"""Setting up what the services run on, in production as on a laptop: the database roles
and migrations (`vroegsignaal migrate`), each trust domain's keys and credentials
(`vroegsignaal secrets`), and who may do what on Kafka (the ACL model the local broker
applies and deploy-check compares with the manifests)."""
