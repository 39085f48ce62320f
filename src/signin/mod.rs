//! Proofs of who a user is that need more than the request itself: JSON Web Tokens checked
//! against a secret, a public key, or the key set an identity provider publishes (fetched
//! over HTTPS). Knows neither socket.io nor the core; the gateway asks it.

pub(crate) mod jwt;
