//! TLS settings: loading a certificate chain and its private key from PEM
//! files into a rustls server configuration (TLS 1.2 and 1.3, ALPN
//! `http/1.1`). The connections themselves are driven by the reactor
//! (`reactor::stream`), sans-IO through rustls's buffered connection.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the certificate chain and key come from; kept so that SIGHUP can
/// load them again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file with the server certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files and builds a server configuration. The error names
    /// the file and what is wrong with it.
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let cert_pem = read(&self.cert, "--tls-cert")?;
        let key_pem = read(&self.key, "--tls-key")?;
        let config = config_from_pem(&cert_pem, &key_pem, &self.cert, &self.key)?;
        if let Some(Ok(cert)) = CertificateDer::pem_slice_iter(&cert_pem).next() {
            log::info!(
                "TLS certificate {}: {}",
                self.cert.display(),
                describe(&cert)
            );
        }
        Ok(config)
    }
}

fn read(path: &Path, option: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{option} {}: cannot read: {e}", path.display()))
}

/// Builds the configuration from PEM text; the paths only name the files
/// in errors.
pub fn config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: bad PEM: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate (expected a \"BEGIN CERTIFICATE\" block)",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        format!(
            "--tls-key {}: no private key found ({e}; expected a \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)",
            key_path.display()
        )
    })?;
    if let Some(not_after) = not_after(&certs[0]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if not_after < now {
            return Err(format!(
                "--tls-cert {}: the certificate expired (notAfter {})",
                cert_path.display(),
                format_time(not_after)
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "--tls-key {} does not fit --tls-cert {}: {e}",
                key_path.display(),
                cert_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The notAfter of a DER certificate, in seconds since the epoch, by a
/// small walk of its structure (Certificate → TBSCertificate → validity).
/// `None` if the walk fails; rustls then judges the certificate alone.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (validity, _) = validity_and_subject(cert)?;
    let after = skip_time(validity)?;
    let (tag, value) = (after.first()?, any_tlv(after)?.0);
    parse_time(*tag, value)
}

/// `subject CN=example.com, O=Example, notAfter 2027-01-01 00:00:00 UTC`
/// for a DER certificate (the common name, organisation, unit, locality,
/// state and country attributes, in the certificate's order), for the log;
/// what cannot be read says so rather than failing.
pub fn describe(cert: &[u8]) -> String {
    let subject = validity_and_subject(cert)
        .and_then(|(_, subject)| subject_text(subject))
        .unwrap_or_else(|| "(unreadable)".into());
    let after = not_after(cert).map_or_else(|| "(unreadable)".into(), format_time);
    format!("subject {subject}, notAfter {after}")
}

/// The attributes of a Name (a SEQUENCE of SETs of {OID, string}) that
/// have a short name, as `CN=a, O=b`; `(empty)` when none has.
fn subject_text(name: &[u8]) -> Option<String> {
    let (mut rdns, _) = tlv(name, 0x30)?;
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = tlv(rdns, 0x31)?;
        rdns = rest;
        while !set.is_empty() {
            let (pair, rest) = tlv(set, 0x30)?;
            set = rest;
            let (oid, value) = tlv(pair, 0x06)?;
            let short = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x06] => "C",
                _ => continue,
            };
            let text = String::from_utf8_lossy(any_tlv(value)?.0);
            parts.push(format!("{short}={}", text.escape_debug()));
        }
    }
    Some(if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(", ")
    })
}

/// The validity and the subject (whole TLV, tag included) of a DER
/// certificate.
fn validity_and_subject(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (cert, _) = tlv(cert, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    // [0] version, optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1;
    }
    rest = tlv(rest, 0x02)?.1; // serial
    rest = tlv(rest, 0x30)?.1; // signature algorithm
    rest = tlv(rest, 0x30)?.1; // issuer
    let (validity, subject) = tlv(rest, 0x30)?;
    Some((validity, subject))
}

/// A TLV with the expected tag: (value, rest).
fn tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    any_tlv(data)
}

fn any_tlv(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *data.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for &b in data.get(2..2 + n)? {
            len = (len << 8) | b as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((data.get(head..end)?, data.get(end..)?))
}

fn skip_time(data: &[u8]) -> Option<&[u8]> {
    Some(any_tlv(data)?.1)
}

/// UTCTime (0x17, YYMMDDHHMMSSZ) or GeneralizedTime (0x18,
/// YYYYMMDDHHMMSSZ) to seconds since the epoch.
fn parse_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (mo, d, h, mi, se) = (num(0)?, num(2)?, num(4)?, num(6)?, num(8)?);
    Some(days_from_civil(year, mo, d)? * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146097 + doe - 719468)
}

/// `2026-12-02 11:35:17 UTC`.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let tod = secs.rem_euclid(86400);
    // Inverse of days_from_civil.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, b"20261202113517Z"), Some(1_796_211_317));
        assert_eq!(format_time(1_796_211_317), "2026-12-02 11:35:17 UTC");
        assert_eq!(parse_time(0x17, b"7001010000Z"), None);
        assert_eq!(not_after(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(
            describe(b"\x30\x03\x02\x01\x00"),
            "subject (unreadable), notAfter (unreadable)"
        );
        // Name: CN=a.example, an unknown attribute, O=Ex.
        let name = b"\x30\x2b\x31\x12\x30\x10\x06\x03\x55\x04\x03\x0c\x09a.example\
                     \x31\x08\x30\x06\x06\x01\x2a\x0c\x01z\
                     \x31\x0b\x30\x09\x06\x03\x55\x04\x0a\x0c\x02Ex";
        assert_eq!(subject_text(name).as_deref(), Some("CN=a.example, O=Ex"));
        assert_eq!(subject_text(b"\x30\x00").as_deref(), Some("(empty)"));
    }
}
