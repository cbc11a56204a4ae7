"""aiosmtpd for Vigie's email tests: plain, STARTTLS or implicit TLS, with
or without AUTH, storing mail in a Maildir. Prints "ready" once listening,
then serves until killed."""

import argparse
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--listen", required=True, help="host:port")
p.add_argument("--maildir", required=True)
p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--user")
p.add_argument("--password")
p.add_argument("--mechanisms", default="PLAIN,LOGIN")
a = p.parse_args()
host, port = a.listen.rsplit(":", 1)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == a.user.encode()
        and auth_data.password == a.password.encode()
    )
    return AuthResult(success=ok, handled=False)


kwargs = {}
if a.tls != "none":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
if a.user:
    wanted = a.mechanisms.split(",")
    kwargs.update(
        auth_required=True,
        authenticator=authenticator,
        auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in wanted],
    )
if a.tls == "starttls":
    kwargs.update(tls_context=ctx, require_starttls=True)
elif a.tls == "implicit":
    # aiosmtpd 1.4 does not count a TLS-wrapped listener as TLS for AUTH.
    kwargs.update(ssl_context=ctx, auth_require_tls=False)

controller = Controller(Mailbox(a.maildir), hostname=host, port=int(port), **kwargs)
controller.start()
print("ready", flush=True)
threading.Event().wait()
