//! TLS client settings shared by every outgoing connection (XMPP, BOSH, a JWKS).

use std::sync::Arc;

use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// TLS client settings: the system's roots, plus the certificates in `ca_file` when given.
pub(crate) fn client_config(ca_file: Option<&std::path::Path>) -> Result<ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken system certificate should not stop the others from being used.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        }
    }
    // ring, as tokio-xmpp's `ring` feature builds it: rustls now prefers aws-lc-rs for its
    // post-quantum key exchange, which needs a C toolchain and CMake to build; XMPP servers
    // and identity providers negotiate the classical groups ring offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
