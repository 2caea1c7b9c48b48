//! TLS for the connections, with libpq's `sslmode` meanings, on rustls (no system library).
//!
//! - `prefer` and `require` encrypt but do not authenticate the server, as in libpq: the
//!   certificate is accepted whatever it is (its handshake signature is still checked, so the
//!   session keys belong to whoever holds the certificate's key).
//! - `verify-ca` checks that the certificate chains to a trusted CA, whatever host name it
//!   carries; `verify-full` also checks the host name. The trusted CAs are `sslrootcert` (a PEM
//!   file) or the operating system's store.
//! - `disable` never starts TLS (the connector is never asked).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::options::SslMode;

/// The connector for `mode`, or a message saying why it cannot be built (an unreadable
/// `sslrootcert`, no usable CA).
pub(crate) fn connector(
    mode: SslMode,
    rootcert: Option<&Path>,
) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(AnyCertificate {
            provider: Arc::clone(&provider),
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(rootcert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|err| format!("cannot set up certificate verification: {err}"))?;
            if mode == SslMode::VerifyCa {
                Arc::new(AnyHostName { inner: webpki })
            } else {
                webpki
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("cannot set up TLS: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The CAs `verify-ca`/`verify-full` trust: every certificate of the `sslrootcert` PEM file, or
/// the operating system's store.
fn roots(rootcert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|err| {
                    format!(
                        "invalid option sslrootcert: cannot read CA certificates from {}: {err}",
                        path.display()
                    )
                })?;
            let (added, _ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "invalid option sslrootcert: {} holds no usable CA certificate (a PEM file \
                     with `-----BEGIN CERTIFICATE-----` blocks is expected)",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslmode verify-ca/verify-full: the operating system's certificate store is \
                     empty or unreadable; name the server's CA with the option sslrootcert"
                        .to_owned(),
                );
            }
        }
    }
    Ok(store)
}

/// libpq's `require`/`prefer`: any certificate (the handshake's own signature is still checked).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must be trusted, the host name is not compared.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The chain checks happen before the name check, so a name mismatch means the
            // certificate is otherwise trusted.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectors_build_for_every_mode() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            connector(mode, None).unwrap();
        }
    }

    #[test]
    fn a_bad_rootcert_is_named() {
        let dir = std::env::temp_dir().join(format!("vcon-pg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = connector(SslMode::VerifyFull, Some(&empty)).err().unwrap();
        assert!(
            err.contains("sslrootcert") && err.contains("empty.pem"),
            "{err}"
        );
        let missing = dir.join("missing.pem");
        let err = connector(SslMode::VerifyCa, Some(&missing)).err().unwrap();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
