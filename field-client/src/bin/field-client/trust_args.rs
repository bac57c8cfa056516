//! The `--pin` / `--ca-cert` choice shared by every command that talks to the server.
//!
//! Exactly one is required: on a closed network there is no public CA to fall back on.

use std::path::PathBuf;

use field_client::Trust;

#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TrustArgs {
    /// SHA-256 fingerprint of the server certificate: 64 hex digits as stored in
    /// <data_dir>/tls/cert.sha256 and printed by `dispatchd fingerprint`, or `sha256=…` as
    /// logged at start. Repeat it (or separate pins with commas) to accept any of several
    /// certificates, as during a certificate rotation.
    #[arg(long, env = "FIELD_CLIENT_PIN", value_delimiter = ',')]
    pin: Vec<String>,
    /// PEM CA certificate to verify the server against, instead of a pin.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl TrustArgs {
    /// # Errors
    /// When the pin is malformed or the CA file is unreadable.
    pub fn trust(&self) -> anyhow::Result<Trust> {
        Ok(match (self.pin.is_empty(), &self.ca_cert) {
            (false, _) => Trust::pins(&self.pin)?,
            (true, Some(path)) => Trust::ca_file(path)?,
            (true, None) => anyhow::bail!("give --pin or --ca-cert"),
        })
    }
}
