//! Delivers the mail outbox over SMTP (lettre), or leaves it for operators when SMTP is off.

use std::time::Duration;

use audit::{MailOutbox, QueuedMail};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::SmtpSettings;
use crate::state::AppState;

/// A configured SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Longest one message may take to send.
    send_limit: Duration,
}

impl Smtp {
    /// Builds the transport, or `None` when no host is configured.
    ///
    /// # Errors
    /// A message when the settings cannot make a transport.
    pub fn from_settings(s: &SmtpSettings) -> Result<Option<Self>, String> {
        if s.host.is_empty() {
            return Ok(None);
        }
        let mut b = match s.security.as_str() {
            "tls" => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(|e| e.to_string())?
            }
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| e.to_string())?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        };
        b = b
            .port(s.port)
            .timeout(Some(Duration::from_secs(s.timeout_secs)));
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(
                s.username.clone(),
                s.password.expose_secret().to_owned(),
            ));
        }
        let from = s.from.parse().map_err(|e| format!("`smtp.from`: {e}"))?;
        Ok(Some(Self {
            transport: b.build(),
            from,
            // The transport's timeout bounds each exchange with the relay; a whole message
            // is a few of them.
            send_limit: Duration::from_secs(s.timeout_secs.clamp(1, 300) * 3),
        }))
    }

    /// Longest one message may take to send: the mail worker promises a heartbeat no further
    /// apart than this and a margin ([`deliver_due`] beats before each send).
    pub fn send_limit(&self) -> Duration {
        self.send_limit
    }

    /// Sends `m`, its sealed tokens opened with `cipher` ([`tenancy::mail_secrets`]) only now.
    async fn send(
        &self,
        m: &QueuedMail,
        cipher: &security_policy::Cipher,
    ) -> Result<(), SendFailure> {
        let to: Mailbox = ascii_domain(&m.to)
            .parse()
            .map_err(|e| SendFailure::permanent(format!("recipient: {e}")))?;
        let body = tenancy::mail_secrets::open_body(cipher, &m.to, &m.body).map_err(|_| {
            SendFailure::permanent(
                "a sealed token in the body does not open with the configured encryption key"
                    .into(),
            )
        })?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| SendFailure::permanent(e.to_string()))?;
        match tokio::time::timeout(self.send_limit, self.transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            // A 5xx answer (an address the relay rejects, say) will not change on a retry.
            Ok(Err(e)) => Err(SendFailure {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
            Err(_) => Err(SendFailure {
                permanent: false,
                message: format!("the relay took longer than {} s", self.send_limit.as_secs()),
            }),
        }
    }
}

/// `address` with its domain in ASCII (IDNA A-labels: `münchen.de` is `xn--mnchen-3ya.de`), as
/// relays without SMTPUTF8 take it; addresses are kept with the domain in Unicode
/// (`tenancy::Email`). One whose domain IDNA refuses is left as it is, for the relay to judge.
fn ascii_domain(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() => match idna::domain_to_ascii(domain) {
            Ok(ascii) => format!("{local}@{ascii}"),
            Err(_) => address.to_owned(),
        },
        _ => address.to_owned(),
    }
}

/// Why a send failed, and whether trying again could help.
struct SendFailure {
    message: String,
    permanent: bool,
}

impl SendFailure {
    fn permanent(message: String) -> Self {
        Self {
            message,
            permanent: true,
        }
    }
}

/// Time left in a lease, after a send at its limit, for recording the outcome.
const RECORD_MARGIN: chrono::Duration = chrono::Duration::seconds(5);

/// Claims due mails and sends them; failures are retried with backoff (1 min × attempts), up
/// to [`audit::MAX_MAIL_ATTEMPTS`] tries, or given up at once when the relay refuses a mail
/// for good (a 5xx answer, an address that does not parse). Beats the `mail` worker's health
/// before each send. Once `stop` says so, sends no more (the rest are claimed again when the
/// lease runs out).
pub async fn deliver_due(
    state: &AppState,
    smtp: &Smtp,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> usize {
    let now = state.clock.now();
    // Long enough for two sends at their limit with their records, and at least a minute.
    let send_limit = chrono::Duration::from_std(smtp.send_limit).unwrap_or_default();
    let lease = now + (send_limit * 2 + RECORD_MARGIN * 2).max(chrono::Duration::seconds(60));
    let mails = match state.store.claim_mails(now, lease, 20).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "mail worker: cannot claim mails");
            return 0;
        }
    };
    let mut sent = 0;
    for m in mails {
        // A send starts only while the lease outlasts it and its record: past the lease
        // another instance may claim the mail and send it too. The rest are claimed again
        // when it runs out.
        let now = state.clock.now();
        if now + send_limit + RECORD_MARGIN >= lease || *stop.borrow() {
            break;
        }
        // A pass of sends to a slow relay can outlast the worker's promised silence; each send
        // alone cannot.
        state.health.beat("mail", now.timestamp());
        match smtp.send(&m, &state.cipher).await {
            Ok(()) => {
                sent += 1;
                if let Err(e) = state.store.mark_mail_sent(&m.id, state.clock.now()).await {
                    tracing::warn!(error = %e, mail = %m.id, "mail worker: sent but not marked");
                }
            }
            Err(SendFailure { message, permanent }) => {
                // Given up when the relay refused it for good or it failed too often: it
                // stays in the outbox with its error, for the operator.
                if permanent || m.attempts + 1 >= audit::MAX_MAIL_ATTEMPTS {
                    tracing::warn!(error = %message, mail = %m.id, kind = %m.kind, attempts = m.attempts + 1, "mail worker: send failed; not tried again");
                    if let Err(e) = state.store.give_up_mail(&m.id, &message).await {
                        tracing::warn!(error = %e, mail = %m.id, "mail worker: giving up not recorded");
                    }
                } else {
                    tracing::warn!(error = %message, mail = %m.id, kind = %m.kind, "mail worker: send failed");
                    let retry =
                        state.clock.now() + chrono::Duration::minutes(i64::from(m.attempts) + 1);
                    let _ = state.store.mark_mail_failed(&m.id, &message, retry).await;
                }
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::ascii_domain;

    #[test]
    fn a_unicode_domain_is_sent_as_its_a_labels() {
        assert_eq!(ascii_domain("zoë@münchen.de"), "zoë@xn--mnchen-3ya.de");
        assert_eq!(ascii_domain("sarah@company.com"), "sarah@company.com");
        assert_eq!(ascii_domain("not an address"), "not an address");
    }
}
