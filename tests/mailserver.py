"""A real SMTP server for tests: aiosmtpd in its own process, delivering to a Maildir.

aiosmtpd's `Mailbox` handler stores into a Maildir (not an mbox), one file per message;
it adds X-Peer, X-MailFrom and X-RcptTo headers to what it stores.
"""

from __future__ import annotations

import contextlib
import mailbox
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, cast

from aiosmtpd.handlers import Mailbox

from vroegsignaal.dev.stack.procs import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class RefusingMailbox(Mailbox):
    """Refuses every recipient permanently, as a relay does for an unknown mailbox.

    The refusal repeats the address, as real servers do, so a test can check that it
    never reaches a DeliveryFailed reason.
    """

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        return f"550 5.1.1 <{address}>: recipient address rejected: user unknown"


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    maildir: Path

    def messages(self) -> list[Message]:
        """Every message received so far, oldest first."""
        box = mailbox.Maildir(self.maildir, create=False)
        received = [box.get_message(key) for key in box.iterkeys()]
        assert all(isinstance(m, mailbox.MaildirMessage) for m in received)
        return sorted(received, key=lambda m: cast(mailbox.MaildirMessage, m).get_date())


@contextlib.contextmanager
def mail_server(
    directory: Path,
    *,
    handler: str = "aiosmtpd.handlers.Mailbox",
    timeout: float = 20.0,
    port: int | None = None,
) -> Iterator[MailServer]:
    """Run `python -m aiosmtpd` on `port` (a free one by default) until the block ends."""
    port = port or free_port()
    maildir = directory / "maildir"
    log = directory / "aiosmtpd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"{HOST}:{port}",
                "-c",
                handler,
                str(maildir),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, "aiosmtpd", log, timeout)
        yield MailServer(HOST, port, maildir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
