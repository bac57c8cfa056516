//! TLS for the listener: the operator's own certificate, or a self-signed one generated at first
//! start and kept in the data directory, identified by its SHA-256 fingerprint for pinning.
//!
//! A generated certificate is replaced without cutting tablets off: `dispatchd tls rotate`
//! writes the next one beside it, the running server announces both fingerprints to connected
//! tablets (`pins` frame), and `dispatchd tls rotate --activate` makes the next one current.
//! The running server looks at the files every [`WATCH_INTERVAL`] and switches by itself.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use chrono::Datelike;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::Config;

/// Validity of a generated certificate, days: the longest that Apple platforms accept for a
/// TLS server certificate (the CA/Browser Forum's limit since 2018), so that a certificate
/// made here is never refused for its lifetime alone, and a stolen key does not stay good for
/// ever.
pub const GENERATED_VALIDITY_DAYS: u64 = 825;

/// How often the running server reads its TLS files for a rotation or a renewed certificate:
/// short enough that an operator sees the switch at once, and reading two small files is cheap.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The generated certificate in use, its key, and its fingerprint (`<data_dir>/tls/`).
const CERT: &str = "cert.pem";
const KEY: &str = "key.pem";
const FINGERPRINT: &str = "cert.sha256";
/// The certificate made by `tls rotate`, announced to tablets until it is activated.
const NEXT_CERT: &str = "next.pem";
const NEXT_KEY: &str = "next-key.pem";
const NEXT_FINGERPRINT: &str = "next.sha256";
/// The certificate replaced by the last activation, kept for a manual roll-back.
const PREVIOUS_CERT: &str = "previous.pem";
const PREVIOUS_KEY: &str = "previous-key.pem";

/// A ready server TLS configuration and the fingerprints tablets should trust.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// The fingerprints announced to tablets: `fingerprint` first, then that of the next
    /// certificate while a rotation is pending.
    pub pins: Vec<String>,
}

/// Loads the configured certificate, or the generated one (creating it when missing).
///
/// # Errors
/// When files cannot be read or written, or the certificate and key do not match.
pub fn load_or_generate(config: &Config) -> anyhow::Result<TlsMaterial> {
    if config.tls_cert.is_none() {
        let dir = tls_dir(config);
        if !dir.join(CERT).exists() || !dir.join(KEY).exists() {
            generate(&dir, &config.tls_names, CERT, KEY)?;
        }
    }
    load(config)
}

/// Loads the certificate in use and the pending next one, without generating anything.
///
/// # Errors
/// When files cannot be read or written, or a certificate and its key do not match.
pub fn load(config: &Config) -> anyhow::Result<TlsMaterial> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (tls_dir(config).join(CERT), tls_dir(config).join(KEY)),
    };
    let (server_config, fingerprint) = load_pair(&cert_path, &key_path)?;
    let mut pins = vec![fingerprint.clone()];
    if config.tls_cert.is_none() {
        // Written only when it changes, so that a server on read-only storage still starts.
        write_if_changed(&tls_dir(config).join(FINGERPRINT), &fingerprint)?;
        if let Some(next) = next_fingerprint(config)? {
            pins.push(next);
        }
    }
    Ok(TlsMaterial {
        server_config,
        fingerprint,
        pins,
    })
}

/// Starts a rotation: generates the next key and certificate beside the current ones and
/// returns the next fingerprint.
///
/// # Errors
/// When the certificate is the operator's own (`tls_cert`), a rotation is already pending, or
/// the files cannot be written.
pub fn rotate(config: &Config) -> anyhow::Result<String> {
    anyhow::ensure!(
        config.tls_cert.is_none(),
        "tls_cert is set: the certificate is managed outside dispatchd; replace those files \
         instead (the running server loads them within {} s)",
        WATCH_INTERVAL.as_secs()
    );
    if let Some(next) = next_fingerprint(config)? {
        anyhow::bail!(
            "a rotation is already pending (next certificate sha256={next}); \
             activate it with `dispatchd tls rotate --activate`"
        );
    }
    let dir = tls_dir(config);
    anyhow::ensure!(
        dir.join(CERT).exists(),
        "no certificate in {} to rotate; start the server once first",
        dir.display()
    );
    generate(&dir, &config.tls_names, NEXT_CERT, NEXT_KEY)?;
    let next = next_fingerprint(config)?.context("the next certificate was not written")?;
    write_if_changed(&dir.join(NEXT_FINGERPRINT), &next)?;
    Ok(next)
}

/// Ends a rotation: the next certificate becomes the current one, and the current one is kept
/// as `previous.pem`. Returns the new current fingerprint.
///
/// # Errors
/// When no rotation is pending, the next certificate is unusable, or files cannot be moved.
pub fn activate(config: &Config) -> anyhow::Result<String> {
    anyhow::ensure!(
        config.tls_cert.is_none(),
        "tls_cert is set: the certificate is managed outside dispatchd"
    );
    let dir = tls_dir(config);
    let next = next_fingerprint(config)?
        .context("no rotation is pending; start one with `dispatchd tls rotate`")?;
    // Checked before anything moves: a bad pair must not become the server's certificate.
    load_pair(&dir.join(NEXT_CERT), &dir.join(NEXT_KEY))?;
    let moves = [
        (CERT, PREVIOUS_CERT),
        (KEY, PREVIOUS_KEY),
        (NEXT_CERT, CERT),
        (NEXT_KEY, KEY),
    ];
    for (from, to) in moves {
        fs::rename(dir.join(from), dir.join(to))
            .with_context(|| format!("moving {from} to {to} in {}", dir.display()))?;
    }
    write_if_changed(&dir.join(FINGERPRINT), &next)?;
    match fs::remove_file(dir.join(NEXT_FINGERPRINT)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context("removing next.sha256");
        }
        _ => {}
    }
    Ok(next)
}

/// Follows the TLS files while the server runs: switches the listener when the certificate in
/// use changes (an activated rotation, or the operator's renewed `tls_cert`) and publishes the
/// pins to announce, until `stop` turns true. A file caught half-written is read again at the
/// next look.
pub async fn watch(
    config: Arc<Config>,
    listener: RustlsConfig,
    mut current: String,
    pins: watch::Sender<Arc<[String]>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let config = config.clone();
        let material = match tokio::task::spawn_blocking(move || load(&config)).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!("TLS files unusable, keeping the certificate in use: {e:#}");
                continue;
            }
            Err(e) => {
                tracing::error!("reading the TLS files panicked: {e}");
                continue;
            }
        };
        if material.fingerprint != current {
            listener.reload_from_config(material.server_config);
            tracing::info!(
                "tls certificate switched: fingerprint sha256={}",
                material.fingerprint
            );
            current = material.fingerprint;
        }
        pins.send_if_modified(|announced| {
            let changed = **announced != *material.pins;
            if changed {
                tracing::info!(pins = ?material.pins, "announcing tls pins to devices");
                *announced = material.pins.into();
            }
            changed
        });
    }
}

fn tls_dir(config: &Config) -> PathBuf {
    config.data_dir.join("tls")
}

/// The fingerprint of the pending next certificate, if a rotation is pending.
fn next_fingerprint(config: &Config) -> anyhow::Result<Option<String>> {
    let path = tls_dir(config).join(NEXT_CERT);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(fingerprint(&leaf(&path)?)))
}

fn leaf(cert_path: &Path) -> anyhow::Result<CertificateDer<'static>> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(
        &mut fs::read(cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .with_context(|| format!("parsing certificates in {}", cert_path.display()))?;
    certs
        .into_iter()
        .next()
        .with_context(|| format!("no certificate in {}", cert_path.display()))
}

/// SHA-256 of a DER certificate, lower-case hex.
fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, String)> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(
        &mut fs::read(cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?
            .as_slice(),
    )
    .collect::<Result<_, _>>()
    .with_context(|| format!("parsing certificates in {}", cert_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf.as_ref());
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(
        &mut fs::read(key_path)
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
    Ok((Arc::new(server_config), fingerprint))
}

fn write_if_changed(path: &Path, fingerprint: &str) -> anyhow::Result<()> {
    let line = format!("{fingerprint}\n");
    if fs::read_to_string(path).ok().as_deref() != Some(line.as_str()) {
        fs::write(path, line).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Writes a new self-signed certificate and its key (mode 0600) as `dir/cert_name` and
/// `dir/key_name`, valid from today for [`GENERATED_VALIDITY_DAYS`].
fn generate(
    dir: &Path,
    extra_names: &[String],
    cert_name: &str,
    key_name: &str,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    // Midnight UTC of today and of the last day: at most GENERATED_VALIDITY_DAYS in all.
    let today = chrono::Utc::now().date_naive();
    let last = today + chrono::Days::new(GENERATED_VALIDITY_DAYS);
    let ((y0, m0, d0), (y1, m1, d1)) = (ymd(today)?, ymd(last)?);
    params.not_before = rcgen::date_time_ymd(y0, m0, d0);
    params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    let key_pair = rcgen::KeyPair::generate().context("generating a key")?;
    let cert = params
        .self_signed(&key_pair)
        .context("generating certificate")?;
    let mut key = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(key_name))?;
    key.write_all(key_pair.serialize_pem().as_bytes())?;
    key.sync_all()?;
    // The certificate last: its presence is what marks the pair as complete.
    fs::write(dir.join(cert_name), cert.pem())?;
    tracing::info!(dir = %dir.display(), file = cert_name, valid_until = %last,
        "generated a self-signed TLS certificate");
    Ok(())
}

/// A date as rcgen takes it (rcgen makes midnight UTC of it).
fn ymd(date: chrono::NaiveDate) -> anyhow::Result<(i32, u8, u8)> {
    Ok((
        date.year(),
        u8::try_from(date.month())?,
        u8::try_from(date.day())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        }
    }

    /// One DER element: its tag, its content, and what follows it.
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
            (len, 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }

    /// A UTCTime or GeneralizedTime, and what follows it.
    fn time(der: &[u8]) -> (chrono::NaiveDateTime, &[u8]) {
        let (tag, text, rest) = element(der);
        let text = std::str::from_utf8(text).unwrap();
        let format = match tag {
            0x17 => "%y%m%d%H%M%SZ",
            0x18 => "%Y%m%d%H%M%SZ",
            other => panic!("not a time: tag {other:#x}"),
        };
        (
            chrono::NaiveDateTime::parse_from_str(text, format).unwrap(),
            rest,
        )
    }

    /// notBefore and notAfter of an X.509 certificate, read from its DER.
    fn validity(cert: &[u8]) -> (chrono::NaiveDateTime, chrono::NaiveDateTime) {
        let (_, certificate, _) = element(cert);
        let (_, tbs, _) = element(certificate);
        let mut rest = tbs;
        // [0] version (present in v3), serial number, signature algorithm, issuer.
        if rest[0] == 0xa0 {
            rest = element(rest).2;
        }
        for _ in 0..3 {
            rest = element(rest).2;
        }
        let (_, validity, _) = element(rest);
        let (not_before, rest) = time(validity);
        let (not_after, _) = time(rest);
        (not_before, not_after)
    }

    #[test]
    fn a_generated_certificate_is_valid_for_at_most_825_days_from_today() {
        let dir = tempfile::tempdir().unwrap();
        let material = load_or_generate(&config(dir.path())).unwrap();
        let der = leaf(&dir.path().join("tls").join(CERT)).unwrap();
        assert_eq!(fingerprint(&der), material.fingerprint);
        let (not_before, not_after) = validity(&der);
        let now = chrono::Utc::now().naive_utc();
        assert!(not_before <= now, "{not_before}");
        assert!(
            now - not_before < chrono::TimeDelta::days(1),
            "{not_before}"
        );
        let days = (not_after - not_before).num_days();
        assert!(
            (824..=825).contains(&days),
            "valid {days} days: {not_before} .. {not_after}"
        );
        assert!(not_after - now <= chrono::TimeDelta::days(825));
        // The fingerprint file holds the pin as the field client takes it.
        let written = fs::read_to_string(dir.path().join("tls").join(FINGERPRINT)).unwrap();
        assert_eq!(written, format!("{}\n", material.fingerprint));
    }

    #[test]
    fn a_rotation_announces_both_pins_then_switches() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let old = load_or_generate(&config).unwrap().fingerprint;
        assert!(activate(&config)
            .unwrap_err()
            .to_string()
            .contains("no rotation is pending"));

        let next = rotate(&config).unwrap();
        assert_ne!(next, old);
        let during = load_or_generate(&config).unwrap();
        assert_eq!(
            during.fingerprint, old,
            "the old certificate is still served"
        );
        assert_eq!(during.pins, [old.clone(), next.clone()]);
        let pending = rotate(&config).unwrap_err().to_string();
        assert!(pending.contains(&next), "{pending}");
        let tls = dir.path().join("tls");
        assert_eq!(
            fs::read_to_string(tls.join(NEXT_FINGERPRINT)).unwrap(),
            format!("{next}\n")
        );
        let mode = fs::metadata(tls.join(NEXT_KEY)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );

        assert_eq!(activate(&config).unwrap(), next);
        let after = load_or_generate(&config).unwrap();
        assert_eq!(after.fingerprint, next);
        assert_eq!(after.pins, [next.as_str()]);
        assert_eq!(fingerprint(&leaf(&tls.join(PREVIOUS_CERT)).unwrap()), old);
        assert!(!tls.join(NEXT_CERT).exists() && !tls.join(NEXT_FINGERPRINT).exists());
        assert_eq!(
            fs::read_to_string(tls.join(FINGERPRINT)).unwrap(),
            format!("{next}\n")
        );
    }

    #[test]
    fn an_operator_certificate_is_not_rotated_here() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.tls_cert = Some(dir.path().join("own.pem"));
        config.tls_key = Some(dir.path().join("own-key.pem"));
        assert!(rotate(&config)
            .unwrap_err()
            .to_string()
            .contains("tls_cert"));
        assert!(activate(&config)
            .unwrap_err()
            .to_string()
            .contains("tls_cert"));
    }
}
