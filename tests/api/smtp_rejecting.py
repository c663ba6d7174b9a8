"""An aiosmtpd handler for the tests: it keeps mail in a Maildir, as
aiosmtpd.handlers.Mailbox does, and refuses for good (550) every recipient whose
address starts with "bounce", as a relay refuses an unknown mailbox."""

from aiosmtpd.handlers import Mailbox


class Rejecting(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce"):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"
