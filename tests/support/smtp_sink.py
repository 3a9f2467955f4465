"""A real SMTP server for tests (Debian python3-aiosmtpd): listens on 127.0.0.1 at a port the
OS picks, prints `PORT <n>` on stdout, and writes each message it receives to DIR as
<n>.eml, with the decoded subject, text and HTML parts beside it, then <n>.done. Requires AUTH LOGIN/PLAIN with USER/PASSWORD
when given (plain text allowed: the test runs on loopback)."""

import asyncio
import email
import email.policy
import socket
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    out_dir = sys.argv[1]
    user = sys.argv[2] if len(sys.argv) > 2 else None
    password = sys.argv[3] if len(sys.argv) > 3 else None
    count = 0
    logins = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            nonlocal count
            count += 1
            with open(f"{out_dir}/{count}.eml", "wb") as f:
                f.write(envelope.original_content or envelope.content)
            msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
            with open(f"{out_dir}/{count}.subject", "w") as f:
                f.write(str(msg["subject"]))
            for part, ext in (("plain", "txt"), ("html", "html")):
                body = msg.get_body(preferencelist=(part,))
                with open(f"{out_dir}/{count}.{ext}", "w") as f:
                    f.write(body.get_content() if body is not None else "")
            # Written last: the test waits for this file.
            with open(f"{out_dir}/{count}.done", "w") as f:
                f.write(",".join(envelope.rcpt_tos))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)

    def factory():
        if user is None:
            return SMTP(Handler())
        return SMTP(Handler(), authenticator=authenticator, auth_required=True,
                    auth_require_tls=False)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(factory, sock=sock))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
