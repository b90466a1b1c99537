//! 1:1 message envelopes: XChaCha20-Poly1305 under the pair key.
//!
//! Envelope layout (the exact bytes the relay stores):
//!
//! ```text
//! offset size
//!  0      1   format version = 0x01
//!  1     16   client_msg_id
//! 17      8   sent_at: Unix milliseconds, u64 big-endian
//! 25     24   nonce (random)
//! 49      n   XChaCha20-Poly1305(pair key, nonce, padded payload, AAD), tag included
//! ```
//! `AAD = "sealroom/v1/msg" | sender public key (32) | recipient public key (32) | envelope[0..25]`.

use crate::identity::{PairKey, PublicKey};
use crate::kdf::random_bytes;
use crate::payload::{open_payload, seal_payload, Payload, MAX_PADDED, MIN_PADDED};
use crate::{Error, Result};

/// The envelope format version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 0x01;
/// AAD label of a message.
pub const AAD_LABEL_MSG: &[u8] = b"sealroom/v1/msg";
/// Bytes before the ciphertext: version, client_msg_id, sent_at, nonce.
pub const ENVELOPE_HEADER_LEN: usize = 1 + 16 + 8 + 24;
/// The Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Smallest valid envelope.
pub const MIN_ENVELOPE_LEN: usize = ENVELOPE_HEADER_LEN + MIN_PADDED + TAG_LEN;
/// Largest valid envelope.
pub const MAX_ENVELOPE_LEN: usize = ENVELOPE_HEADER_LEN + MAX_PADDED + TAG_LEN;

/// The cleartext header of an envelope. The relay sees it; the AEAD authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Random id chosen by the sending client; the relay de-duplicates resends by it.
    pub client_msg_id: [u8; 16],
    /// The sender's clock at sending, Unix milliseconds.
    pub sent_at_ms: u64,
}

impl MessageHeader {
    /// A header with a fresh random client_msg_id.
    pub fn new(sent_at_ms: u64) -> Result<Self> {
        let mut client_msg_id = [0u8; 16];
        random_bytes(&mut client_msg_id)?;
        Ok(MessageHeader { client_msg_id, sent_at_ms })
    }

    fn encode(&self) -> [u8; 25] {
        let mut out = [0u8; 25];
        out[0] = ENVELOPE_VERSION;
        out[1..17].copy_from_slice(&self.client_msg_id);
        out[17..25].copy_from_slice(&self.sent_at_ms.to_be_bytes());
        out
    }

    /// Reads the cleartext header of an envelope without decrypting it.
    pub fn parse(envelope: &[u8]) -> Result<Self> {
        if envelope.len() < MIN_ENVELOPE_LEN || envelope.len() > MAX_ENVELOPE_LEN {
            return Err(Error::InvalidLength {
                what: "envelope",
                expected: MIN_ENVELOPE_LEN,
                actual: envelope.len(),
            });
        }
        if envelope[0] != ENVELOPE_VERSION {
            return Err(Error::UnsupportedVersion { what: "envelope", version: envelope[0] });
        }
        let mut client_msg_id = [0u8; 16];
        client_msg_id.copy_from_slice(&envelope[1..17]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&envelope[17..25]);
        Ok(MessageHeader { client_msg_id, sent_at_ms: u64::from_be_bytes(at) })
    }
}

/// The associated data of a message.
pub fn message_aad(sender: &PublicKey, recipient: &PublicKey, header: &MessageHeader) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL_MSG.len() + 64 + 25);
    aad.extend_from_slice(AAD_LABEL_MSG);
    aad.extend_from_slice(sender.as_bytes());
    aad.extend_from_slice(recipient.as_bytes());
    aad.extend_from_slice(&header.encode());
    aad
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMessage {
    /// The authenticated header.
    pub header: MessageHeader,
    /// What the message says.
    pub payload: Payload,
}

/// Encrypts `payload` from `sender` to `recipient` under their pair key, with a random nonce.
pub fn seal_message(
    pair: &PairKey,
    sender: &PublicKey,
    recipient: &PublicKey,
    header: &MessageHeader,
    payload: &Payload,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    seal_message_with_nonce(pair, sender, recipient, header, payload, &nonce)
}

/// [`seal_message`] with a caller-chosen nonce. Only for known-answer tests: a nonce must never
/// repeat under one pair key.
#[doc(hidden)]
pub fn seal_message_with_nonce(
    pair: &PairKey,
    sender: &PublicKey,
    recipient: &PublicKey,
    header: &MessageHeader,
    payload: &Payload,
    nonce: &[u8; 24],
) -> Result<Vec<u8>> {
    let aad = message_aad(sender, recipient, header);
    let ct = seal_payload(&pair.0, nonce, &aad, payload)?;
    let mut envelope = Vec::with_capacity(ENVELOPE_HEADER_LEN + ct.len());
    envelope.extend_from_slice(&header.encode());
    envelope.extend_from_slice(nonce);
    envelope.extend_from_slice(&ct);
    Ok(envelope)
}

/// Decrypts an envelope sent by `sender` to `recipient`.
///
/// Every failure after the length and version checks is the opaque [`Error::Decryption`],
/// including a payload that decrypts but does not parse (it cannot come from an honest sender).
/// The one exception is an authentic payload of a type this build does not know (a newer
/// client's edit or reaction, say): that is [`Error::UnsupportedVersion`], so the caller can
/// show "update to read this" rather than "tampered".
pub fn open_message(
    pair: &PairKey,
    sender: &PublicKey,
    recipient: &PublicKey,
    envelope: &[u8],
) -> Result<OpenedMessage> {
    let header = MessageHeader::parse(envelope)?;
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&envelope[25..ENVELOPE_HEADER_LEN]);
    let aad = message_aad(sender, recipient, &header);
    let payload = open_payload(&pair.0, &nonce, &aad, &envelope[ENVELOPE_HEADER_LEN..])?;
    Ok(OpenedMessage { header, payload })
}
