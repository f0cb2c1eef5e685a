//! The broker's refresh tokens: `<grant id>.<nonce>.<mac>`, where the nonce is 256 random bits
//! and the MAC is HMAC-SHA-256 of the grant id and the nonce under a key derived from the
//! storage key.
//!
//! A token names its grant, so the store keeps nothing per token: a refresh reads the grant,
//! which holds the hashes of the tokens it accepts. The MAC tells a token this broker issued
//! from one made up around a known grant id (access tokens carry it, as `sid`): an issued token
//! the grant no longer accepts is an older generation replayed, which ends the grant, while a
//! made-up one is only refused — whoever knows a grant id cannot end it.

use super::secrets::{CryptoFailure, MacKey, random_token};

/// The MAC's purpose, which keeps it from verifying as any other MAC of the same key.
const PURPOSE: &str = "refresh-token";

/// A refresh token presented by a client, split into its parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    token: &'a str,
    pub(crate) grant_id: &'a str,
    issued_part: &'a str,
    mac: &'a str,
}

impl<'a> Presented<'a> {
    /// The parts of `token`; `None` when it is not shaped like the broker's refresh tokens
    /// (then no grant is named, and it is unknown).
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        let (issued_part, mac) = token.rsplit_once('.')?;
        let (grant_id, nonce) = issued_part.split_once('.')?;
        let base64url = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (base64url(grant_id) && base64url(nonce) && base64url(mac)).then_some(Self {
            token,
            grant_id,
            issued_part,
            mac,
        })
    }

    /// The whole token, as presented.
    pub(crate) fn token(&self) -> &'a str {
        self.token
    }

    /// Whether this broker issued the token (under the current storage key or a previous one).
    pub(crate) fn issued_by(&self, key: &MacKey) -> bool {
        key.verify(PURPOSE, self.issued_part, self.mac)
    }
}

/// A new refresh token for `grant_id`.
pub(crate) fn mint(key: &MacKey, grant_id: &str) -> Result<String, CryptoFailure> {
    let issued_part = format!("{grant_id}.{}", random_token(32)?);
    let mac = key.sign(PURPOSE, &issued_part);
    Ok(format!("{issued_part}.{mac}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MacKey {
        MacKey::new(&[byte; 32])
    }

    #[test]
    fn a_minted_token_names_its_grant_and_verifies() {
        let token = mint(&key(1), "grant-1_x").unwrap();
        let presented = Presented::parse(&token).unwrap();
        assert_eq!(presented.grant_id, "grant-1_x");
        assert!(presented.issued_by(&key(1)));
        assert!(!presented.issued_by(&key(2)));
        // A previous key still recognises what it issued.
        assert!(presented.issued_by(&key(2).with_previous(&[1; 32])));
        // 22 + 43 + 43 characters of base64url, two dots.
        assert_eq!(mint(&key(1), "AAAAAAAAAAAAAAAAAAAAAA").unwrap().len(), 110);
    }

    #[test]
    fn a_token_changed_anywhere_is_not_the_brokers() {
        let token = mint(&key(1), "grant").unwrap();
        let (grant, rest) = token.split_once('.').unwrap();
        let other_grant = format!("{grant}x.{rest}");
        let parsed = Presented::parse(&other_grant).unwrap();
        assert_eq!(parsed.grant_id, "grantx");
        assert!(!parsed.issued_by(&key(1)));
        let mut flipped = token.into_bytes();
        let middle = flipped.len() / 2;
        flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(!Presented::parse(&flipped).unwrap().issued_by(&key(1)));
    }

    #[test]
    fn tokens_of_another_shape_name_no_grant() {
        for token in [
            "", "opaque", "a.b", ".b.c", "a..c", "a.b.", "a.b.c.d", "a.b+.c", "a b.c.d", "a.b.c=",
        ] {
            assert!(Presented::parse(token).is_none(), "{token:?}");
        }
    }
}
