//! What lives outside the reactive graph — the vault (every key), the outbox and the socket —
//! and the adapter the shared client core (`sealroom-session`) needs: its vault cell and a
//! [`Transport`] over `fetch`. Secrets stay in a thread-local, only in memory: signing out or
//! closing the tab forgets them.

use std::cell::RefCell;

use leptos::prelude::Set;
use sealroom_crypto::{KdfParams, PasswordKeys};
use sealroom_protocol::{ApiError, Endpoint, ErrorCode};
use sealroom_session::{Outbox, Transport, Vault, VaultCell};

use super::model::{capitalize, human};
use super::App;
use crate::api::{self, Socket};
use crate::browser::sleep;

/// What lives outside the reactive graph: the vault (every key), the outbox and the socket.
pub(crate) struct Keys {
    pub(crate) vault: Vault,
    pub(crate) outbox: Outbox,
    pub(crate) socket: Option<Socket>,
}

thread_local! {
    pub(crate) static KEYS: RefCell<Option<Keys>> = const { RefCell::new(None) };
}

pub(crate) fn with_keys<T>(f: impl FnOnce(&mut Keys) -> T) -> Option<T> {
    KEYS.with(|k| k.borrow_mut().as_mut().map(f))
}

/// The signed-in vault, for the shared client core's flows.
pub(crate) struct WebVault;

impl VaultCell for WebVault {
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R> {
        with_keys(|k| f(&mut k.vault))
    }
}

/// Why something did not work: the relay said no, or the client core did.
#[derive(Debug)]
pub enum Failure {
    /// The relay answered with an error.
    Api(ApiError),
    /// No answer came: the relay could not be reached, or the connection failed before its
    /// answer was read (the request may or may not have been done). Flows that can repeat
    /// a request keep it for later, never drop it as refused.
    NoAnswer(ApiError),
    /// The client core refused.
    Core(sealroom_session::Error),
}

impl From<sealroom_session::Error> for Failure {
    fn from(e: sealroom_session::Error) -> Self {
        Failure::Core(e)
    }
}

impl Failure {
    /// As a sentence for people.
    pub fn human(&self) -> String {
        use sealroom_session::Error as E;
        match self {
            Failure::Api(e) | Failure::NoAnswer(e) => human(e),
            Failure::Core(E::BackupUnreadable) => "Your key backup does not open with this password.".into(),
            Failure::Core(E::IdentityMismatch) => {
                "The server is publishing a different identity key for you \
                 than the one in your key backup, so signing in was stopped: your contacts could be \
                 encrypting to a key you do not hold. Contact the server's operator."
                    .into()
            }
            Failure::Core(E::WeakPassword(why)) => format!("Choose a stronger password: {why}."),
            Failure::Core(E::KeyChanged(c)) => format!(
                "{}'s security key has changed. Compare the new safety number before sending.",
                c.peer
            ),
            // It starts with a username, which is shown as it is (lowercase).
            Failure::Core(e @ E::NoSigningKey(_)) => e.to_string(),
            Failure::Core(e) => capitalize(&e.to_string()),
        }
    }

    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Api(e) | Failure::NoAnswer(e) => Some(e.error),
            Failure::Core(_) => None,
        }
    }
}

/// What `api::call` reports when no answer came (see [`Failure::NoAnswer`]).
fn no_answer(e: &ApiError) -> bool {
    e.error == ErrorCode::Internal && e.message.starts_with("server unreachable")
}

/// The browser's [`Transport`]: `fetch` with the session cookie. Argon2id runs after the page
/// painted "Deriving keys…".
#[derive(Clone, Copy)]
pub(crate) struct Fetch(pub(crate) App);

impl Transport for Fetch {
    type Error = Failure;

    async fn call<E: Endpoint>(&self, path: &str, body: Option<&E::Body>) -> Result<E::Response, Failure> {
        api::call::<E::Body, E::Response>(E::METHOD.as_str(), path, body).await.map_err(|e| {
            if no_answer(&e) {
                Failure::NoAnswer(e)
            } else {
                Failure::Api(e)
            }
        })
    }

    fn api_error(e: &Failure) -> Option<&ApiError> {
        match e {
            Failure::Api(a) => Some(a),
            Failure::NoAnswer(_) | Failure::Core(_) => None,
        }
    }

    fn no_answer(e: &Failure) -> bool {
        matches!(e, Failure::NoAnswer(_))
    }

    async fn derive_keys(
        &self,
        password: &str,
        salt: &[u8],
        params: KdfParams,
    ) -> Result<PasswordKeys, Failure> {
        self.0.account.busy.set(Some("Deriving keys from your password…".into()));
        sleep(60).await; // let the browser paint the state first
        let keys = PasswordKeys::derive(password, salt, params).map_err(|e| {
            Failure::Api(ApiError::new(
                ErrorCode::Internal,
                format!("the server asked for unsafe key parameters: {e}"),
            ))
        });
        self.0.account.busy.set(Some("Contacting the server…".into()));
        keys
    }

    fn seen_generation(&self, username: &str) -> Option<u64> {
        crate::browser::seen_generation(username)
    }

    fn saw_generation(&self, username: &str, generation: u64) {
        crate::browser::saw_generation(username, generation);
    }
}

/// A REST call to endpoint `E` at `path`.
pub(crate) async fn call<E: Endpoint>(path: &str, body: Option<&E::Body>) -> Result<E::Response, ApiError> {
    api::call::<E::Body, E::Response>(E::METHOD.as_str(), path, body).await
}
