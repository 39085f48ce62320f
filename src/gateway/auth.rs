//! Handshake tokens: `<username>.<hex HMAC-SHA256 of the username>`. The token, not the
//! USER_CONNECT payload, decides who a socket may act as.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::{Secret, valid_nickname};

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &Secret, username: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    mac
}

/// The token for `username`.
pub fn mint_token(secret: &Secret, username: &str) -> String {
    format!(
        "{username}.{}",
        hex::encode(mac(secret, username).finalize().into_bytes())
    )
}

/// The username a token was minted for, if it is genuine.
pub fn verify_token(secret: &Secret, token: &str) -> Option<String> {
    let (username, signature) = token.rsplit_once('.')?;
    if !valid_nickname(username) {
        return None;
    }
    let signature = hex::decode(signature).ok()?;
    // verify_slice compares in constant time.
    mac(secret, username).verify_slice(&signature).ok()?;
    Some(username.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_secret_and_username() {
        let secret = Secret::new("0123456789abcdef0123");
        let token = mint_token(&secret, "maria.souza");
        assert_eq!(verify_token(&secret, &token), Some("maria.souza".into()));
        assert_eq!(
            verify_token(&Secret::new("another-secret-entirely"), &token),
            None
        );
        let forged = token.replacen("maria.souza", "joao", 1);
        assert_eq!(verify_token(&secret, &forged), None);
        assert_eq!(verify_token(&secret, "maria"), None);
        assert_eq!(verify_token(&secret, "maria.zz"), None);
    }

    #[test]
    fn the_mac_is_hmac_sha256_as_openssl_computes_it() {
        // RFC 4231 test case 2; the README's `openssl dgst -sha256 -hmac` line yields the same.
        let token = mint_token(&Secret::new("Jefe"), "what do ya want for nothing?");
        assert_eq!(
            token,
            "what do ya want for nothing?.5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
