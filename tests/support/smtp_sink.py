"""A real SMTP server for the tests (Debian's python3-aiosmtpd).

    smtp_sink.py PORT DIR

Listens on 127.0.0.1:PORT (0: any free port) and prints "READY <port>" once
it accepts connections. Each message it accepts is written to DIR as
<n>.eml (atomically: written under another name, then renamed). Replies by
recipient, so a test can pick its failure:

  reject…@…    550 at RCPT (a permanent failure)
  tempfail…@…  451 at RCPT (a temporary failure)
  stall…@…     accepted, then no answer to the message at all (a tarpit)

and, while the file DIR/TEMPFAIL exists, 451 for every recipient.
"""

import asyncio
import itertools
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 No such mailbox here"
        if local.startswith("tempfail") or os.path.exists(os.path.join(self.directory, "TEMPFAIL")):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(a.split("@", 1)[0].lower().startswith("stall") for a in envelope.rcpt_tos):
            await asyncio.sleep(3600)
        n = next(self.counter)
        name = os.path.join(self.directory, f"{os.getpid()}-{n:06d}.eml")
        tmp = name + ".part"
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(tmp, name)
        return "250 Message accepted"


async def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    loop = asyncio.get_running_loop()
    handler = Sink(directory)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=port,
        reuse_address=True,
    )
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
