//! TLS to the shards, with the meanings of the `mysql` client's `--ssl-mode`: `required`
//! encrypts without checking the certificate, `verify_ca` checks that the keyspace's CA signed
//! it, `verify_identity` also that it names the shard's host.

use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use vschema::BackendTls;

/// The client configuration for `tls`; `None` when the keyspace's shards are reached in the
/// clear. An error names a CA file that could not be used.
pub fn client_config(tls: &BackendTls) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match tls {
        BackendTls::Disabled => return Ok(None),
        BackendTls::Required => Arc::new(Lenient {
            ca: None,
            provider: provider.clone(),
        }),
        BackendTls::VerifyCa(ca) => Arc::new(Lenient {
            ca: Some(webpki(ca, &provider)?),
            provider: provider.clone(),
        }),
        BackendTls::VerifyIdentity(ca) => webpki(ca, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

fn webpki(
    ca: &std::path::Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let bytes = std::fs::read(ca).map_err(|e| format!("backend CA {}: {e}", ca.display()))?;
    let mut certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("backend CA {}: {e}", ca.display()))?;
    if certs.is_empty() {
        // Not PEM: one DER certificate.
        certs.push(CertificateDer::from(bytes));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("backend CA {}: {e}", ca.display()))?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("backend CA {}: {e}", ca.display()))
}

/// `required` (no CA: any certificate) and `verify_ca` (the chain must lead to the CA, whatever
/// name the certificate is for). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    ca: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = &self.ca else {
            return Ok(ServerCertVerified::assertion());
        };
        match ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
