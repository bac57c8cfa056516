//! TLS for the listener: the operator's own certificate, or a self-signed one generated at first
//! start and kept in the data directory, identified by its SHA-256 fingerprint for pinning.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// A ready server TLS configuration and the fingerprint of its leaf certificate.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint: String,
}

/// Loads the configured certificate, or the generated one (creating it when missing).
///
/// # Errors
/// When files cannot be read or written, or the certificate and key do not match.
pub fn load_or_generate(config: &Config) -> anyhow::Result<TlsMaterial> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = config.data_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                generate(&dir, &config.tls_names)?;
            }
            (c, k)
        }
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(
        &mut fs::read(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .with_context(|| format!("parsing certificates in {}", cert_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = hex::encode(Sha256::digest(leaf.as_ref()));
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(
        &mut fs::read(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?
            .as_slice(),
    )
    .with_context(|| format!("parsing key in {}", key_path.display()))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    let mut server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not match")?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if config.tls_cert.is_none() {
        // Written only when it changes, so that a server on read-only storage still starts.
        let path = config.data_dir.join("tls").join("cert.sha256");
        let line = format!("{fingerprint}\n");
        if fs::read_to_string(&path).ok().as_deref() != Some(line.as_str()) {
            fs::write(&path, line).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(TlsMaterial {
        server_config: Arc::new(server_config),
        fingerprint,
    })
}

fn generate(dir: &Path, extra_names: &[String]) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let certified = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
    fs::write(dir.join("cert.pem"), certified.cert.pem())?;
    let mut key = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("key.pem"))?;
    key.write_all(certified.key_pair.serialize_pem().as_bytes())?;
    key.sync_all()?;
    tracing::info!(dir = %dir.display(), "generated a self-signed TLS certificate");
    Ok(())
}
