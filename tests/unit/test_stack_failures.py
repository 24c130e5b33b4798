"""The local stack fails with one clear message that names the fix."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vroegsignaal.dev.stack import kafka as kafka_stack
from vroegsignaal.dev.stack.kafka import KafkaNode
from vroegsignaal.dev.stack.local import stop_leftovers
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision.errors import StackError


@pytest.fixture
def fake_kafka_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line looks like a Kafka left over from a killed run."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka"],
    )
    yield proc
    proc.kill()
    proc.wait()


def test_no_java_names_the_install_and_the_alternative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"no Java found.*KAFKA_BOOTSTRAP_SERVERS"):
        kafka_stack.java_binary()


def test_no_maven_on_first_start_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"Maven \(mvn\) not found"):
        kafka_stack.ensure_jars()


def test_unreachable_maven_central_is_reported_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_mvn = tmp_path / "bin" / "mvn"
    fake_mvn.parent.mkdir()
    fake_mvn.write_text(
        "#!/bin/sh\necho '[ERROR] Could not transfer artifact: Connection refused' >&2\nexit 1\n"
    )
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("VS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(fake_mvn.parent))
    with pytest.raises(StackError, match="Maven Central must be reachable") as failed:
        kafka_stack.ensure_jars()
    assert "Connection refused" in str(failed.value)


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = KafkaNode(tmp_path / "kafka", port, free_port(), admin_password="x" * 32)
        with pytest.raises(StackError, match=f"port {port} for Kafka is taken.*VS_KAFKA_PORT"):
            node.start()


def test_a_leftover_from_a_killed_run_is_found_and_stopped(
    tmp_path: Path, fake_kafka_process: subprocess.Popen[bytes]
) -> None:
    node = KafkaNode(tmp_path / "kafka", free_port(), free_port(), admin_password="x" * 32)
    node.data_dir.mkdir(parents=True)
    node.pidfile.write_text(f"{fake_kafka_process.pid}\n")
    with pytest.raises(StackError, match=r"earlier run.*vroegsignaal dev down"):
        node.start()
    assert stop_leftovers(tmp_path) == [f"Kafka (pid {fake_kafka_process.pid})"]
    assert fake_kafka_process.wait(timeout=10) is not None
    assert not node.pidfile.exists()


def test_a_partner_command_fails_with_one_message_not_a_stack_trace(tmp_path: Path) -> None:
    from vroegsignaal.provision.secrets import init_secrets

    made = init_secrets(tmp_path / "secrets", pseudonymiser_url="http://127.0.0.1:1")
    children = tmp_path / "children.csv"
    children.write_text("child_bsn\n999990019\n")
    unreachable = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "partner", "erase", str(children),
         "--config", str(made.partner_config("school-de-regenboog"))],
        env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert "fout: Kafka op 127.0.0.1" in unreachable.stderr  # Dutch by default
    assert "is niet bereikbaar" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "partner", "erase", str(children),
         "--config", str(tmp_path / "nope.yaml")],
        env={"PATH": "/usr/bin:/bin", "VS_LANGUAGE": "en"}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "error: cannot read partner configuration" in missing.stderr


def test_a_service_container_gets_its_settings_by_name_and_nothing_of_the_host() -> None:
    """`dev up --image`: the docker client passes each setting by name from its own
    environment, so no password or key path is on a command line, and the host's own
    variables (PATH, HOME) stay out of the container."""
    from vroegsignaal.dev.devstack import DATA_DIR, container_command

    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "DATABASE_URL": "postgresql://intake:s3cret-password@127.0.0.1:15432/vroegsignaal",
        "KAFKA_BOOTSTRAP_SERVERS": "localhost:19092",
        "VS_KAFKA_SASL_PASSWORD_FILE": str(DATA_DIR / "secrets" / "kafka-intake"),
    }

    command = container_command("intake", ["serve", "intake"], env, "vroegsignaal:local")

    passed = [command[i + 1] for i, arg in enumerate(command) if arg == "--env"]
    assert passed == ["DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "VS_KAFKA_SASL_PASSWORD_FILE"]
    assert not any("s3cret-password" in arg for arg in command)
    assert command[-3:] == ["vroegsignaal:local", "serve", "intake"]
    for hardening in ("--read-only", "--rm", "--init"):
        assert hardening in command
    data = str(DATA_DIR.resolve())
    assert f"{data}:{data}" in command
