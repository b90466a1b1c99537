//! The little of an MLS message (RFC 9420 §6) the relay reads to order a group's log: the
//! group id, the epoch and the content type of a `PublicMessage` or `PrivateMessage`. Nothing
//! past the content type is parsed; the relay decrypts nothing (it has no cryptography).
//!
//! ```text
//! MLSMessage     = version: u16 (1 = mls10) | wire_format: u16 | body
//! PublicMessage  = group_id<V> | epoch: u64 | sender | authenticated_data<V> | content_type: u8 | …
//! sender         = sender_type: u8 (1 member, 2 external, 3 new member proposal,
//!                  4 new member commit) | leaf_index: u32 (member) | sender_index: u32 (external)
//! PrivateMessage = group_id<V> | epoch: u64 | content_type: u8 | …
//! <V>            = a length in RFC 9000's variable-length form (1, 2 or 4 bytes, minimal)
//! ```

/// `mls10`.
pub const MLS_VERSION_10: u16 = 1;
/// `mls_public_message`.
pub const WIRE_PUBLIC_MESSAGE: u16 = 1;
/// `mls_private_message`.
pub const WIRE_PRIVATE_MESSAGE: u16 = 2;
/// `mls_welcome`.
pub const WIRE_WELCOME: u16 = 3;
/// `mls_group_info`.
pub const WIRE_GROUP_INFO: u16 = 4;
/// `mls_key_package`.
pub const WIRE_KEY_PACKAGE: u16 = 5;

/// What an MLS handshake or application message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Application data (a message).
    Application,
    /// A standalone proposal.
    Proposal,
    /// A commit: it moves the group to the next epoch.
    Commit,
}

/// The framing of a group message, as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The epoch it was made in.
    pub epoch: u64,
    /// What it carries.
    pub content_type: ContentType,
    /// A commit by a device joining from outside (an external commit).
    pub external_join: bool,
}

/// Why a message is not a group message the relay can order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Too short, a bad length, or trailing nonsense in the fields read.
    #[error("not an MLS message")]
    Malformed,
    /// Another protocol version.
    #[error("not an MLS 1.0 message")]
    Version,
    /// Not a `PublicMessage` or `PrivateMessage` (a Welcome, say).
    #[error("not an MLS group message")]
    WireFormat,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FramingError> {
        if self.0.len() < n {
            return Err(FramingError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FramingError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FramingError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, FramingError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| FramingError::Malformed)?;
        Ok(u64::from_be_bytes(b))
    }
    /// RFC 9420 §2.1.2: the two top bits give the length of the length; the shortest form only.
    fn vector(&mut self) -> Result<&'a [u8], FramingError> {
        let first = self.u8()?;
        let len = match first >> 6 {
            0 => usize::from(first & 0x3f),
            1 => {
                let len = usize::from(first & 0x3f) << 8 | usize::from(self.u8()?);
                if len < 64 {
                    return Err(FramingError::Malformed);
                }
                len
            }
            2 => {
                let rest = self.take(3)?;
                let len = usize::from(first & 0x3f) << 24
                    | usize::from(rest[0]) << 16
                    | usize::from(rest[1]) << 8
                    | usize::from(rest[2]);
                if len < 16384 {
                    return Err(FramingError::Malformed);
                }
                len
            }
            _ => return Err(FramingError::Malformed),
        };
        self.take(len)
    }
}

fn content_type(byte: u8) -> Result<ContentType, FramingError> {
    match byte {
        1 => Ok(ContentType::Application),
        2 => Ok(ContentType::Proposal),
        3 => Ok(ContentType::Commit),
        _ => Err(FramingError::Malformed),
    }
}

/// The wire format of an `MLSMessage` (after checking it is MLS 1.0).
pub fn wire_format(bytes: &[u8]) -> Result<u16, FramingError> {
    let mut c = Cursor(bytes);
    if c.u16()? != MLS_VERSION_10 {
        return Err(FramingError::Version);
    }
    c.u16()
}

/// Whether `bytes` start like a KeyPackage (RFC 9420 §10: MLS 1.0, then a cipher suite), as
/// devices upload them (bare, not wrapped in an `MLSMessage`). The relay looks no further;
/// whoever adds the device checks the package.
pub fn is_key_package(bytes: &[u8]) -> bool {
    let mut c = Cursor(bytes);
    c.u16() == Ok(MLS_VERSION_10) && c.u16().is_ok_and(|suite| suite != 0) && bytes.len() > 4
}

/// Reads a group message's framing.
pub fn parse_framing(bytes: &[u8]) -> Result<Framing, FramingError> {
    let mut c = Cursor(bytes);
    if c.u16()? != MLS_VERSION_10 {
        return Err(FramingError::Version);
    }
    match c.u16()? {
        WIRE_PUBLIC_MESSAGE => {
            let group_id = c.vector()?.to_vec();
            let epoch = c.u64()?;
            let sender_type = c.u8()?;
            match sender_type {
                1 | 2 => {
                    c.take(4)?;
                }
                3 | 4 => {}
                _ => return Err(FramingError::Malformed),
            }
            c.vector()?;
            let content_type = content_type(c.u8()?)?;
            Ok(Framing { group_id, epoch, content_type, external_join: sender_type == 4 })
        }
        WIRE_PRIVATE_MESSAGE => {
            let group_id = c.vector()?.to_vec();
            let epoch = c.u64()?;
            let content_type = content_type(c.u8()?)?;
            Ok(Framing { group_id, epoch, content_type, external_join: false })
        }
        _ => Err(FramingError::WireFormat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_message_header_is_read_and_nothing_else_is_needed() {
        // version 1, private message, group id (16 bytes), epoch 7, commit, then opaque rest.
        let mut m = vec![0, 1, 0, 2, 16];
        m.extend_from_slice(&[0xab; 16]);
        m.extend_from_slice(&7u64.to_be_bytes());
        m.push(3);
        m.extend_from_slice(b"ciphertext follows");
        let f = parse_framing(&m).unwrap();
        assert_eq!(
            f,
            Framing {
                group_id: vec![0xab; 16],
                epoch: 7,
                content_type: ContentType::Commit,
                external_join: false
            }
        );
        assert_eq!(wire_format(&m).unwrap(), WIRE_PRIVATE_MESSAGE);
    }

    #[test]
    fn a_public_external_commit_is_recognised() {
        let mut m = vec![0, 1, 0, 1, 16];
        m.extend_from_slice(&[1; 16]);
        m.extend_from_slice(&u64::MAX.to_be_bytes());
        m.push(4); // new member commit: no index
        m.extend_from_slice(&[0x40, 0x40]); // 64 bytes of authenticated data, two-byte length
        m.extend_from_slice(&[0; 64]);
        m.push(3);
        let f = parse_framing(&m).unwrap();
        assert!(f.external_join);
        assert_eq!((f.epoch, f.content_type), (u64::MAX, ContentType::Commit));
        // A member sender carries a leaf index.
        let mut m = vec![0, 1, 0, 1, 1, 9, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 5, 0, 1];
        assert_eq!(parse_framing(&m).unwrap().content_type, ContentType::Application);
        m[14] = 9; // no such sender type
        assert_eq!(parse_framing(&m), Err(FramingError::Malformed));
    }

    #[test]
    fn what_is_not_a_group_message_is_refused_without_panicking() {
        assert_eq!(parse_framing(&[]), Err(FramingError::Malformed));
        assert_eq!(parse_framing(&[0, 2, 0, 2]), Err(FramingError::Version));
        assert_eq!(parse_framing(&[0, 1, 0, 3, 0]), Err(FramingError::WireFormat));
        // A length that runs past the end, a non-minimal length, the reserved 0b11 prefix.
        assert_eq!(parse_framing(&[0, 1, 0, 2, 5, 1]), Err(FramingError::Malformed));
        assert_eq!(parse_framing(&[0, 1, 0, 2, 0x40, 1, 0]), Err(FramingError::Malformed));
        assert_eq!(parse_framing(&[0, 1, 0, 2, 0xc0, 0, 0, 0, 0, 0, 0, 0, 1]), Err(FramingError::Malformed));
        // A content type outside 1..=3.
        let mut m = vec![0, 1, 0, 2, 0];
        m.extend_from_slice(&0u64.to_be_bytes());
        m.push(0);
        assert_eq!(parse_framing(&m), Err(FramingError::Malformed));
        for n in 0..m.len() {
            let _ = parse_framing(&m[..n]);
        }
    }
}
