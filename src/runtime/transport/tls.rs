//! TLS with rustls: loading certificates and keys, ALPN, client certificates,
//! and reloading on SIGHUP.
//!
//! What it does: builds a `rustls::ServerConfig` from PEM files (RSA, ECDSA and
//! Ed25519 keys; PKCS#8 keys encrypted with a password; TLS 1.2 and 1.3; ALPN
//! `h2` then `http/1.1`; client certificates none / optional / required against
//! a CA bundle). `TlsState` holds the current config; `reload()` swaps in a new
//! one built from the same files, so new connections use the new certificate
//! and connections already open keep theirs.
//!
//! What it does not do: accept connections or run handshakes (the server does,
//! with tokio-rustls), or decide which addresses use TLS (the configuration).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientCert {
    None,
    Optional,
    Required,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) certfile: PathBuf,
    pub(crate) keyfile: PathBuf,
    pub(crate) keyfile_password: Option<String>,
    pub(crate) ca_certs: Option<PathBuf>,
    pub(crate) client_cert: ClientCert,
}

/// A TLS setting that cannot be used; the message says which file and why.
#[derive(Debug)]
pub(crate) struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TlsError {}

fn error(msg: impl Into<String>) -> TlsError {
    TlsError(msg.into())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| error(format!("cannot read the {what} {}: {e}", path.display())))
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            error(format!(
                "the {what} {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(error(format!(
            "the {what} {} contains no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "key file")?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(error(format!(
            "the key file {} uses legacy OpenSSL encryption; convert it to encrypted PKCS#8 with \
             `openssl pkcs8 -topk8 -in OLD -out NEW`",
            path.display()
        )));
    }
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let Some(password) = password else {
            return Err(error(format!(
                "the key file {} is encrypted; give its password with --keyfile-password",
                path.display()
            )));
        };
        let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| {
            error(format!(
                "the key file {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
            error(format!(
                "the key file {} is not an encrypted PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        let decrypted = encrypted.decrypt(password).map_err(|_| {
            error(format!(
                "cannot decrypt the key file {}: wrong --keyfile-password?",
                path.display()
            ))
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            decrypted.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        error(format!(
            "the key file {} holds no usable private key ({e})",
            path.display()
        ))
    })
}

/// The text of the first PEM block with `label`, BEGIN and END lines included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

pub(crate) fn build(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs(&settings.certfile, "certificate file")?;
    let key = load_key(&settings.keyfile, settings.keyfile_password.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| error(format!("TLS setup failed: {e}")))?;
    // A CA bundle given is read and checked even when client certificates are
    // not asked for: a typo in its path should not wait for the day it is used.
    let roots = match &settings.ca_certs {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca, "CA file")? {
                roots.add(cert).map_err(|e| {
                    error(format!(
                        "the CA file {} holds an unusable certificate: {e}",
                        ca.display()
                    ))
                })?;
            }
            Some(roots)
        }
        None => None,
    };
    let builder = match (settings.client_cert, roots) {
        (ClientCert::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(error("--client-cert optional|required needs --ca-certs")),
        (mode, Some(roots)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientCert::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| error(format!("client certificate verification: {e}")))?,
            )
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        error(format!(
            "the key in {} does not match the certificate in {} ({e})",
            settings.keyfile.display(),
            settings.certfile.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The current TLS configuration, replaceable while the server runs.
pub(crate) struct TlsState {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    pub(crate) fn new(settings: TlsSettings) -> Result<TlsState, TlsError> {
        let config = build(&settings)?;
        Ok(TlsState {
            settings,
            current: RwLock::new(config),
        })
    }

    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap().clone()
    }

    /// Rebuild from the same files. On error the old configuration stays.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.settings)?;
        *self.current.write().unwrap() = config;
        Ok(())
    }
}

/// What a TLS connection tells the application (the mod_ssl variable names).
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsInfo {
    pub(crate) protocol: String,
    pub(crate) cipher: String,
    /// The client's certificate as PEM, when it sent one.
    pub(crate) client_cert_pem: Option<String>,
    /// ALPN chose `h2` (RFC 7301): the connection is HTTP/2 from its first
    /// byte (RFC 9113 §3.3).
    pub(crate) alpn_h2: bool,
}

impl TlsInfo {
    pub(crate) fn from_connection(conn: &rustls::ServerConnection) -> TlsInfo {
        use base64::Engine as _;
        let client_cert_pem = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|cert| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
                let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
                for line in b64.as_bytes().chunks(64) {
                    pem.push_str(std::str::from_utf8(line).unwrap_or_default());
                    pem.push('\n');
                }
                pem.push_str("-----END CERTIFICATE-----\n");
                pem
            });
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .map(openssl_cipher_name)
            .unwrap_or_default();
        TlsInfo {
            protocol: protocol.to_string(),
            cipher: cipher.to_string(),
            client_cert_pem,
            alpn_h2: conn.alpn_protocol() == Some(b"h2"),
        }
    }
}

/// OpenSSL's name for a cipher suite, as mod_ssl puts in SSL_CIPHER (rustls
/// uses the IANA names, with a `TLS13_` prefix for TLS 1.3 suites). Covers the
/// suites rustls offers; anything else keeps its rustls name.
fn openssl_cipher_name(rustls_name: &str) -> &str {
    match rustls_name {
        "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cipher_names_follow_openssl() {
        assert_eq!(
            super::openssl_cipher_name("TLS13_AES_128_GCM_SHA256"),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            super::openssl_cipher_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }

    use super::*;

    #[test]
    fn finds_pem_blocks() {
        let text = "junk\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\nmore";
        assert_eq!(
            pem_block(text, "ENCRYPTED PRIVATE KEY"),
            Some(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
            )
        );
        assert_eq!(pem_block(text, "CERTIFICATE"), None);
    }

    #[test]
    fn missing_files_are_named() {
        let settings = TlsSettings {
            certfile: "/nonexistent/cert.pem".into(),
            keyfile: "/nonexistent/key.pem".into(),
            keyfile_password: None,
            ca_certs: None,
            client_cert: ClientCert::None,
        };
        let err = build(&settings).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
