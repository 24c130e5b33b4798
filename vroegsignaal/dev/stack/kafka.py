"""Apache Kafka in KRaft single-node mode on the local JDK, from jars Maven resolves.

Does what Kafka's own scripts do and no more: resolve the runtime classpath of
`org.apache.kafka:kafka_2.13` plus a Log4j2 SLF4J binding into a cache outside the
repository (once; later starts need no network), run `kafka.tools.StorageTool format`
once per data directory, then `kafka.Kafka server.properties`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vroegsignaal.dev.stack.procs import (
    require_free_port,
    run_checked,
    stale_process,
    stop_process,
    wait_for_port,
    write_pidfile,
)
from vroegsignaal.provision.errors import StackError
from vroegsignaal.provision.kafka_access import ADMIN_USER

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MIN_JAVA = 17
# Written once the storage is formatted with the admin's SCRAM credential.
SECURED = "sasl-scram"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.vroegsignaal</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="${sys:kafka.logs.dir}/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
"""


def cache_root() -> Path:
    base = os.environ.get("VS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vroegsignaal"
    )
    return Path(base)


def java_binary() -> str:
    java = (
        shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin"))
        if os.environ.get("JAVA_HOME")
        else None
    )
    java = java or shutil.which("java")
    if java is None:
        raise StackError(
            f"no Java found: Kafka needs a JDK {MIN_JAVA}+. Install one "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME; or point "
            "KAFKA_BOOTSTRAP_SERVERS at an existing cluster."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < MIN_JAVA:
        found = match.group(1) if match else "unknown"
        raise StackError(
            f"Java {found} at {java} is too old: Kafka {KAFKA_VERSION} needs {MIN_JAVA}+. "
            "Install a newer JDK or set JAVA_HOME."
        )
    return java


def maven_binary(what: str, otherwise: str = "") -> str:
    """Maven, which resolves `what` from Maven Central on the first start."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"Maven (mvn) not found: the first start resolves {what} from Maven Central. "
            f"Install it (apt-get install maven){', ' + otherwise if otherwise else ''}."
        )
    return mvn


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """The directory holding Kafka's runtime jars, resolved through Maven on first use."""
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    marker = home / ".complete"
    if marker.exists():
        return libs
    mvn = maven_binary("Kafka's jars", "or point KAFKA_BOOTSTRAP_SERVERS at a cluster")
    home.mkdir(parents=True, exist_ok=True)
    if libs.exists():
        shutil.rmtree(libs)
    (home / "pom.xml").write_text(POM.format(kafka=version, log4j=LOG4J_VERSION))
    run_checked(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(home / "pom.xml"),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        f"resolving Kafka {version} through Maven",
        "Maven Central must be reachable for the first start (check the network, a proxy "
        "in ~/.m2/settings.xml), or point KAFKA_BOOTSTRAP_SERVERS at a cluster.",
    )
    if not any(libs.glob(f"kafka_2.13-{version}.jar")):
        raise StackError(f"Maven finished but {libs} holds no kafka_2.13-{version}.jar")
    marker.write_text(version + "\n")
    return libs


@dataclass
class KafkaNode:
    """One broker+controller node whose data lives in `data_dir`, secured like production:
    clients log in with SCRAM-SHA-512 and get only what ACLs grant them (the standard
    authorizer; nothing without an ACL). `admin_password` is the operator's (`admin`,
    the only super user besides the node's own controller login); its credential is
    made when the storage is formatted. Only on loopback, so without TLS."""

    data_dir: Path
    port: int
    controller_port: int
    admin_password: str
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = None
    # The controller listener's login: the node talks to itself (SASL/PLAIN, static, a
    # new password each start: nothing else ever logs in there).
    _controller_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def bootstrap_servers(self) -> str:
        return f"localhost:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "kafka.pid"

    def _properties(self) -> str:
        logs = self.data_dir / "data"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=localhost:{self.controller_port}",
                f"listeners=CLIENT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=CLIENT://localhost:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=CLIENT",
                "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                "listener.name.client.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{self.admin_password}";',
                "sasl.mechanism.controller.protocol=PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                "listener.name.controller.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="controller" password="{self._controller_password}" '
                f'user_controller="{self._controller_password}";',
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{ADMIN_USER};User:controller",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={logs}",
                "num.partitions=6",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )

    def start(self, timeout: float = 90.0) -> None:
        java = java_binary()
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stale = stale_process(self.pidfile, "kafka.Kafka")
        if stale is not None:
            raise StackError(
                f"a Kafka from an earlier run (pid {stale.pid}) still uses {self.data_dir}. "
                "Stop it with 'vroegsignaal dev down' (or 'make stop')."
            )
        require_free_port(self.port, "Kafka", "VS_KAFKA_PORT")
        require_free_port(self.controller_port, "the Kafka controller", "VS_KAFKA_CONTROLLER_PORT")
        props = self.data_dir / "server.properties"
        props.touch(mode=0o600)
        props.chmod(0o600)  # it holds the admin's password
        props.write_text(self._properties())
        formatted = (self.data_dir / "data" / "meta.properties").exists()
        if formatted and not (self.data_dir / SECURED).exists():
            raise StackError(
                f"the Kafka data in {self.data_dir} predates SASL/SCRAM and ACLs (it has no "
                "admin credential): remove it with 'make clean' (local data only) and start again"
            )
        log_config = self.data_dir / "log4j2.xml"
        log_config.write_text(LOG4J2)
        classpath = str(libs / "*")
        if not (self.data_dir / "data" / "meta.properties").exists():
            cluster_id = run_checked(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                "creating a Kafka cluster id",
                "Check the JDK.",
            ).strip()
            run_checked(
                [
                    java,
                    f"-Dlog4j2.configurationFile={log_config}",
                    f"-Dkafka.logs.dir={self.data_dir}",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    "--standalone",
                    "--ignore-formatted",
                    "--add-scram",
                    f"SCRAM-SHA-512=[name={ADMIN_USER},password={self.admin_password}]",
                ],
                "formatting Kafka storage",
                f"Remove {self.data_dir} ('make clean') if it holds a broken earlier run.",
            )
            (self.data_dir / SECURED).write_text("SCRAM-SHA-512 admin credential made\n")
        log = self.data_dir / "kafka.out"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    java,
                    f"-Xms{self.heap}",
                    f"-Xmx{self.heap}",
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-Djava.awt.headless=true",
                    f"-Dkafka.logs.dir={self.data_dir}",
                    f"-Dlog4j2.configurationFile={log_config}",
                    "-cp",
                    classpath,
                    "kafka.Kafka",
                    str(props),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        write_pidfile(self.pidfile, self.process.pid)
        wait_for_port(self.port, self.process, "Kafka", self.data_dir / "server.log", timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None
        self.pidfile.unlink(missing_ok=True)
