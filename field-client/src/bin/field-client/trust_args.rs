//! The `--pin` / `--ca-cert` choice shared by every command that talks to the server.
//!
//! Exactly one is required: on a closed network there is no public CA to fall back on.

use std::path::PathBuf;

use field_client::Trust;

#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TrustArgs {
    /// SHA-256 fingerprint of the server certificate (64 hex digits, as printed by dispatchd
    /// and stored in <data_dir>/tls/cert.sha256).
    #[arg(long, env = "FIELD_CLIENT_PIN")]
    pin: Option<String>,
    /// PEM CA certificate to verify the server against, instead of a pin.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl TrustArgs {
    /// # Errors
    /// When the pin is malformed or the CA file is unreadable.
    pub fn trust(&self) -> anyhow::Result<Trust> {
        Ok(match (&self.pin, &self.ca_cert) {
            (Some(pin), _) => Trust::pin(pin)?,
            (None, Some(path)) => Trust::ca_file(path)?,
            (None, None) => anyhow::bail!("give --pin or --ca-cert"),
        })
    }
}
