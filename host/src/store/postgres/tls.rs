//! TLS to PostgreSQL as libpq's options ask for it, so that a URL that works with `psql`
//! works here: `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file of the authorities to trust, or
//! `system` for the system's), and `sslcert` with `sslkey` (a client certificate).
//!
//! tokio-postgres reads only `disable`, `prefer` and `require`, and no certificate options, so
//! those are taken out of the URL here and the rest is left to it. As with libpq, `prefer` and
//! `require` encrypt without checking who answers unless `sslrootcert` is given (then
//! `require` checks the chain as `verify-ca` does); `verify-ca` checks that the server's
//! certificate chains to a trusted authority, `verify-full` also that it names the host.
//! `allow` (libpq: plain first, TLS if the server insists) is read as `prefer`. Unlike libpq,
//! nothing is read from `~/.postgresql/`: files are named in the URL.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
pub(super) use tokio_postgres_rustls::MakeRustlsConnect as Connector;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    const ALL: [Mode; 5] = [Mode::Disable, Mode::Prefer, Mode::Require, Mode::VerifyCa, Mode::VerifyFull];

    fn parse(value: &str) -> Result<Mode, String> {
        if value == "allow" {
            return Ok(Mode::Prefer);
        }
        Mode::ALL.into_iter().find(|mode| mode.as_str() == value).ok_or_else(|| {
            format!("sslmode={value} is not one of disable, allow, prefer, require, verify-ca, verify-full")
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS may, or must, be used.
    pub(super) fn driver(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS options read out of a database URL (those tokio-postgres does not read itself).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Options {
    /// `None` when the URL leaves it to tokio-postgres (a key=value string, or no `sslmode`).
    mode: Option<Mode>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Splits `url` into what tokio-postgres reads and the TLS options read here. Only the URL
/// form (`postgres://…?sslmode=…`) carries the options tokio-postgres lacks; a key=value
/// string is left whole to it.
pub(super) fn take_options(url: &str) -> Result<(String, Options), String> {
    let mut options = Options::default();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    // As tokio-postgres reads a URL: the credentials end at the first `@`, whatever they hold.
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let query_at = url[after_credentials..].find('?').map(|at| after_credentials + at);
    let Some(query_at) = query_at.filter(|_| is_url) else {
        return Ok((url.to_owned(), options));
    };
    let (base, query) = (&url[..query_at], &url[query_at + 1..]);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode_str(key).decode_utf8_lossy();
        let key = key.as_ref();
        let slot = match key {
            "sslmode" => {
                let value = decode(key, value)?;
                options.mode = Some(Mode::parse(&value)?);
                continue;
            }
            "sslrootcert" => &mut options.root_cert,
            "sslcert" => &mut options.cert,
            "sslkey" => &mut options.key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(decode(key, value)?);
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, options))
}

fn decode(key: &str, value: &str) -> Result<String, String> {
    match percent_decode_str(value).decode_utf8() {
        Ok(text) if !text.is_empty() => Ok(text.into_owned()),
        Ok(_) => Err(format!("{key} needs a value")),
        Err(_) => Err(format!("{key}'s value is not UTF-8 once decoded")),
    }
}

impl Options {
    /// The mode to connect with: the URL's `sslmode`, else `verify-full` with
    /// `sslrootcert=system` (libpq 16's rule), else what tokio-postgres read (`prefer` unless
    /// a key=value string said otherwise).
    pub(super) fn mode(&self, read: SslMode) -> Result<Mode, String> {
        let system = self.root_cert.as_deref() == Some("system");
        let mode = self.mode.unwrap_or(match read {
            _ if system => Mode::VerifyFull,
            SslMode::Disable => Mode::Disable,
            SslMode::Require => Mode::Require,
            _ => Mode::Prefer,
        });
        if system && mode != Mode::VerifyFull {
            // The system's authorities issue certificates to anyone for their own names.
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}: without checking the \
                 name, any publicly issued certificate would pass",
                mode.as_str()
            ));
        }
        Ok(mode)
    }

    /// The connector for `mode` (see [`Options::mode`]). Reads the certificate files now, so
    /// that a missing or unreadable one stops the start.
    pub(super) fn connector(&self, mode: Mode) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        // libpq: `require` with root certificates checks the chain; `prefer` never does.
        let roots = match mode {
            Mode::Disable | Mode::Prefer => None,
            Mode::Require => self.roots()?,
            Mode::VerifyCa | Mode::VerifyFull => Some(self.roots()?.ok_or_else(|| {
                format!(
                    "sslmode={} needs the certificate authorities to trust: add \
                     sslrootcert=/path/to/ca.pem (PEM), or sslrootcert=system for the system's",
                    mode.as_str()
                )
            })?),
        };
        let builder = match (mode, roots) {
            (Mode::VerifyFull, Some(roots)) => builder.with_root_certificates(roots),
            (_, roots) => {
                let algorithms = provider.signature_verification_algorithms;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(Verifier { roots, algorithms }))
            }
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certificates("sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {key}: no private key read ({e})"))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("sslcert and sslkey: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("sslcert and sslkey go together: give both, or neither".into()),
        };
        // PostgreSQL 17's direct TLS (`sslnegotiation=direct`) requires it; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Connector::new(config))
    }

    fn roots(&self) -> Result<Option<RootCertStore>, String> {
        let Some(source) = &self.root_cert else { return Ok(None) };
        let certificates = if source == "system" {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!("sslrootcert=system: no system certificates found ({:?})", found.errors));
            }
            found.certs
        } else {
            read_certificates("sslrootcert", source)?
        };
        let mut roots = RootCertStore::empty();
        let (_, unusable) = roots.add_parsable_certificates(certificates);
        if roots.is_empty() {
            return Err(format!("sslrootcert {source}: none of its {unusable} certificates can be trusted"));
        }
        Ok(Some(roots))
    }
}

fn read_certificates(option: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{option} {path}: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("{option} {path}: no PEM certificate in it"));
    }
    Ok(certificates)
}

/// Checks a server's certificate chain against `roots`, or nothing when there are none
/// (libpq's `prefer` and `require`), but never its name. The handshake's signatures are
/// always checked: whoever answers holds the key of the certificate it shows.
#[derive(Debug)]
struct Verifier {
    roots: Option<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &certificate,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_out_the_options_tokio_postgres_does_not_read_and_keeps_the_rest_as_written() {
        let (rest, options) = take_options(
            "postgres://app:p%3Fss@db/hooks?options=-c%20search_path%3Dx&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .expect("readable");
        assert_eq!(rest, "postgres://app:p%3Fss@db/hooks?options=-c%20search_path%3Dx&connect_timeout=3");
        assert_eq!(options.mode, Some(Mode::VerifyFull));
        assert_eq!(options.root_cert.as_deref(), Some("/etc/ca.pem"));

        // tokio-postgres's credentials end at the first `@`, a `?` in them included.
        let (rest, options) = take_options("postgres://app:p?ss@db/hooks?sslmode=require").expect("readable");
        assert_eq!((rest.as_str(), options.mode), ("postgres://app:p?ss@db/hooks", Some(Mode::Require)));
        let (rest, options) = take_options("postgresql://db/hooks?ssl%6Dode=allow").expect("readable");
        assert_eq!(
            (rest.as_str(), options.mode),
            ("postgresql://db/hooks", Some(Mode::Prefer)),
            "keys decoded"
        );
        // A key=value string is tokio-postgres's to read.
        let (rest, options) = take_options("host=db sslmode=require").expect("readable");
        assert_eq!((rest.as_str(), options), ("host=db sslmode=require", Options::default()));
    }

    #[test]
    fn refuses_what_it_cannot_honour_before_connecting() {
        let refusal = |url: &str| {
            let (_, options) = take_options(url)?;
            options.connector(options.mode(SslMode::Prefer)?).map(|_| ())
        };
        let message = refusal("postgres://db/x?sslmode=verify_full").expect_err("a misspelt mode");
        assert!(message.contains("verify-full"), "{message}");
        let message = refusal("postgres://db/x?sslmode=verify-ca").expect_err("no authority to trust");
        assert!(message.contains("sslrootcert"), "{message}");
        let message = refusal("postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .expect_err("a missing file");
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        let message = refusal("postgres://db/x?sslcert=/c.pem").expect_err("a certificate without its key");
        assert!(message.contains("sslkey"), "{message}");
        let message =
            refusal("postgres://db/x?sslmode=require&sslrootcert=system").expect_err("system, unnamed");
        assert!(message.contains("sslmode=verify-full"), "{message}");
        let message = refusal("postgres://db/x?sslrootcert=").expect_err("an empty value");
        assert!(message.contains("sslrootcert needs a value"), "{message}");
        for fine in ["postgres://db/x", "postgres://db/x?sslmode=require", "postgres://db/x?sslmode=disable"]
        {
            refusal(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }

    #[test]
    fn reads_a_client_certificate_with_its_key() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write");
            path.to_str().expect("a UTF-8 path").to_owned()
        };
        let mine = rcgen::generate_simple_self_signed(vec!["wasmhook".to_owned()]).expect("a certificate");
        let other = rcgen::generate_simple_self_signed(vec!["wasmhook".to_owned()]).expect("a certificate");
        let cert = write("client.pem", mine.cert.pem());
        let key = write("client.key", mine.signing_key.serialize_pem());
        let wrong_key = write("other.key", other.signing_key.serialize_pem());
        let connector = |key: &str| {
            let (_, options) =
                take_options(&format!("postgres://db/x?sslmode=require&sslcert={cert}&sslkey={key}"))?;
            options.connector(Mode::Require).map(|_| ())
        };
        connector(&key).expect("a certificate and its key");
        let message = connector(&wrong_key).expect_err("another certificate's key");
        assert!(message.starts_with("sslcert and sslkey"), "{message}");
        let message = connector(&cert).expect_err("a certificate where the key should be");
        assert!(message.contains("no private key"), "{message}");
    }
}
