//! The mail worker: one per server, beside the pages (joined with the
//! server future, like the sweeper). Every second it turns expired
//! unfinished sign-ins into alerts and sends what is due in the outbox,
//! one message at a time, each claimed for `LEASE` seconds — so several
//! instances (and the command line, which only writes) share one outbox,
//! and a message whose sender died mid-send goes out again once the claim
//! lapses.

use std::sync::Arc;
use std::time::Duration;

use super::{Delivery, Mailer, render};
use crate::auth::Auth;

/// How long a claim lasts: twice as long as one SMTP conversation may take
/// in all (`SEND_TIMEOUT`, enforced around the whole send), so a live
/// sender always records its outcome before anyone else may claim the row.
pub const LEASE: i64 = 60;
const _: () = assert!(super::SEND_TIMEOUT.as_secs() * 2 <= LEASE as u64);
/// At most this many messages per round, so the alerts keep their pace.
const PER_ROUND: usize = 20;

/// Run for as long as the server runs.
pub async fn run(auth: Arc<Auth>, mailer: Mailer) {
    tracing::info!(smtp = %mailer.settings.smtp.shown(), from = %mailer.settings.from, "Email notifications are on");
    let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = round(&auth, &mailer).await {
            tracing::warn!(error = %e, "mail worker: the database did not answer; trying again");
        }
    }
}

/// One round: alerts, then up to `PER_ROUND` messages. Returns how many
/// were sent.
pub async fn round(auth: &Auth, mailer: &Mailer) -> crate::auth::AuthResult<usize> {
    auth.finish_unfinished_sign_ins().await?;
    let mut sent = 0;
    for _ in 0..PER_ROUND {
        let Some((message, user)) = auth.claim_mail(LEASE).await? else {
            break;
        };
        let stale = auth.now().0 >= message.created_at + crate::core::notice::GIVE_UP_SECONDS;
        let outcome = match user {
            None => Delivery::Permanent("the account no longer exists".into()),
            // Written while email was off (or never sent for a day): its
            // news and its link are stale; it is not sent now.
            Some(_) if stale => Delivery::Permanent("not sent within 24 hours of the event".into()),
            Some(user) => {
                let link = auth.email_link(&message);
                match render::render(&mailer.settings, &message, &user.username, &link)
                    .and_then(|r| render::build(&mailer.settings, &message, r))
                {
                    Ok(email) => mailer.send(email).await,
                    Err(e) => Delivery::Permanent(e),
                }
            }
        };
        match &outcome {
            Delivery::Sent => {
                sent += 1;
                tracing::info!(kind = %message.kind, reference = %message.reference, "email sent");
            }
            Delivery::Temporary(e) => {
                tracing::warn!(kind = %message.kind, reference = %message.reference, error = %e, "email not sent; will try again")
            }
            Delivery::Permanent(e) => {
                tracing::error!(kind = %message.kind, reference = %message.reference, error = %e, "email refused; not retried")
            }
        }
        crate::metrics::mail(match outcome {
            Delivery::Sent => "sent",
            Delivery::Temporary(_) => "temporary_failure",
            Delivery::Permanent(_) => "permanent_failure",
        });
        auth.mail_outcome(&message, &outcome).await?;
    }
    Ok(sent)
}
