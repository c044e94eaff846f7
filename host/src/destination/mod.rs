//! Where webhooks may send, and how a destination URL is read.
//!
//! A URL's scheme picks its transport: HTTP, or a message broker (RabbitMQ, NATS JetStream,
//! Redis Streams, MQTT). Its host must not be a loopback, private, link-local or otherwise
//! non-public address unless the operator allows private destinations, or that very host
//! (`--allow-destination-host HOST[:PORT]`). This is the save-time check of the URL's text; each
//! transport checks the resolved addresses again when it connects, so a DNS name cannot smuggle
//! a private address past it.
//!
//! Broker URLs may carry credentials. They are secret: [`redacted`] is the form ever shown.

mod address;

use std::fmt;
use std::str::FromStr;

pub use address::is_public;
use url::{Host, Url};

/// How a destination is reached, by its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `http`, `https`
    Http,
    /// `amqp`, `amqps`: RabbitMQ
    Amqp,
    /// `nats`: NATS JetStream
    Nats,
    /// `redis`, `rediss`: Redis Streams
    Redis,
    /// `mqtt`, `mqtts`
    Mqtt,
}

/// The schemes a destination may have, as the errors list them.
pub const SCHEMES: &str = "http, https, amqp, amqps, nats, redis, rediss, mqtt or mqtts";

impl Transport {
    pub fn of(url: &Url) -> Option<Transport> {
        Some(match url.scheme() {
            "http" | "https" => Transport::Http,
            "amqp" | "amqps" => Transport::Amqp,
            "nats" => Transport::Nats,
            "redis" | "rediss" => Transport::Redis,
            "mqtt" | "mqtts" => Transport::Mqtt,
            _ => return None,
        })
    }

    /// What the delivery log and errors call it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "HTTP",
            Transport::Amqp => "RabbitMQ",
            Transport::Nats => "NATS JetStream",
            Transport::Redis => "Redis",
            Transport::Mqtt => "MQTT",
        }
    }

    /// Whether the URL asks for TLS.
    pub fn tls(url: &Url) -> bool {
        matches!(url.scheme(), "https" | "amqps" | "rediss" | "mqtts")
    }

    fn default_port(self, tls: bool) -> u16 {
        match (self, tls) {
            (Transport::Http, false) => 80,
            (Transport::Http, true) => 443,
            (Transport::Amqp, false) => 5672,
            (Transport::Amqp, true) => 5671,
            (Transport::Nats, _) => 4222,
            (Transport::Redis, _) => 6379,
            (Transport::Mqtt, false) => 1883,
            (Transport::Mqtt, true) => 8883,
        }
    }
}

/// The port a URL connects to, its scheme's default when it names none.
pub fn port(url: &Url) -> u16 {
    url.port().unwrap_or_else(|| Transport::of(url).map_or(0, |t| t.default_port(Transport::tls(url))))
}

/// Which non-public destinations the operator allows.
#[derive(Debug, Clone, Default)]
pub struct Allow {
    /// Every one (development, tests).
    pub private: bool,
    /// These hosts (on any port, or on the one given).
    pub hosts: Vec<AllowedHost>,
}

impl Allow {
    /// Every private destination, or none.
    pub fn private(private: bool) -> Allow {
        Allow { private, hosts: Vec::new() }
    }

    /// Whether `host` on `port` may be reached although it is not public.
    pub fn permits(&self, host: &str, port: u16) -> bool {
        self.private || self.hosts.iter().any(|allowed| allowed.matches(host, port))
    }

    /// Whether `host` is allowed on some port (where the port is checked elsewhere).
    pub fn hosts_any_port(&self, host: &str) -> bool {
        self.private || self.hosts.iter().any(|allowed| allowed.host == host)
    }
}

/// One `--allow-destination-host`: `HOST` or `HOST:PORT` (an IPv6 address in brackets).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedHost {
    /// As [`host_key`] spells it.
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|allowed| allowed == port)
    }
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<AllowedHost, String> {
        let url = Url::parse(&format!("http://{text}"))
            .ok()
            .filter(|url| url.path() == "/" && url.query().is_none() && url.username().is_empty())
            .ok_or_else(|| format!("{text:?} is not HOST or HOST:PORT (an IPv6 address in brackets)"))?;
        let host = host(&url).as_ref().map(host_key).ok_or_else(|| format!("{text:?} has no host"))?;
        // `Url` drops a port that is its scheme's default: read it from the text.
        let port = match text.rsplit_once(':') {
            Some((_, port)) if !text.ends_with(']') => {
                Some(port.parse().map_err(|_| format!("{text:?}: {port:?} is not a port"))?)
            }
            _ => None,
        };
        Ok(AllowedHost { host, port })
    }
}

impl TryFrom<String> for AllowedHost {
    type Error = String;

    fn try_from(text: String) -> Result<AllowedHost, String> {
        text.parse()
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A URL's host, read as an address when it is one. URLs of schemes `url` does not know
/// (amqp, nats…) keep their host as opaque text, which would let `amqp://10.0.0.5` pass for a
/// name.
pub fn host(url: &Url) -> Option<Host<String>> {
    match url.host()? {
        Host::Domain(name) => Some(Host::parse(name).unwrap_or_else(|_| Host::Domain(name.to_owned()))),
        other => Some(other.to_owned()),
    }
}

/// A host as allow-lists compare it: a name in lowercase without its final dot, an IPv6
/// address in brackets.
pub fn host_key(host: &Host<String>) -> String {
    match host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => format!("[{ip}]"),
    }
}

/// Checks a destination URL; the error says what is wrong.
pub fn check_url(text: &str, allow: &Allow) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    check(&url, allow)?;
    Ok(url)
}

/// Checks a destination URL already parsed (each attempt's: parsing it again costs as much
/// as the checks).
pub fn check(url: &Url, allow: &Allow) -> Result<(), String> {
    // Only an error shows the URL.
    let shown = || redacted(url);
    let Some(transport) = Transport::of(url) else {
        return Err(format!("{:?} must be an {SCHEMES} URL", shown()));
    };
    if transport == Transport::Http && has_credentials(url) {
        return Err(format!(
            "{:?} must not carry credentials; use the connector config or the signature",
            shown()
        ));
    }
    let Some(host) = host(url) else { return Err(format!("{:?} has no host", shown())) };
    let private = match &host {
        Host::Ipv4(ip) => !is_public((*ip).into()),
        Host::Ipv6(ip) => !is_public((*ip).into()),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if private && !allow.permits(&host_key(&host), port(url)) {
        return Err(format!(
            "{:?} points at a loopback, private or otherwise non-public address; \
             webhooks must reach a public host (operators can allow private destinations, \
             or this host with --allow-destination-host)",
            shown()
        ));
    }
    if transport != Transport::Http {
        crate::broker::check(transport, url).map_err(|why| format!("{:?}: {why}", shown()))?;
    }
    Ok(())
}

/// Whether a URL carries a user name or password.
pub fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The URL as it may be shown: its password, or a token given as its user name, as `***`.
pub fn redacted(url: &Url) -> String {
    if !has_credentials(url) {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Setting them fails only for URLs that cannot have credentials, which have none.
    if url.password().is_some() {
        let _ = shown.set_password(Some("***"));
    } else {
        let _ = shown.set_username("***");
    }
    shown.to_string()
}

/// The same text redacted: as it is without an `@`, else its URL's redacted form, or a
/// placeholder when it cannot be read as a URL (it might still hold a credential).
pub fn redacted_text(text: &str) -> String {
    if !text.contains('@') {
        return text.to_owned();
    }
    Url::parse(text).map(|url| redacted(&url)).unwrap_or_else(|_| "(a URL with credentials)".into())
}

/// Where a message goes: the URL a plugin set, or its webhook's. A plugin-set broker URL
/// without credentials, on the webhook's own broker, is sent with the webhook's credentials:
/// a plugin picks the subject or topic, never the login.
pub fn target(plugin_url: Option<&str>, webhook_url: &str) -> Result<Url, String> {
    let webhook = Url::parse(webhook_url).map_err(|e| format!("the webhook's URL is not a URL: {e}"))?;
    let Some(text) = plugin_url else { return Ok(webhook) };
    let mut url = Url::parse(text).map_err(|e| format!("{:?} is not a URL: {e}", redacted_text(text)))?;
    if Transport::of(&url) != Some(Transport::Http)
        && !has_credentials(&url)
        && url.scheme() == webhook.scheme()
        && host(&url) == host(&webhook)
        && port(&url) == port(&webhook)
    {
        let _ = url.set_username(webhook.username());
        let _ = url.set_password(webhook.password());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::address::tests::AUDIT_LITERALS;
    use super::*;

    const NONE: Allow = Allow { private: false, hosts: Vec::new() };
    const ALL: Allow = Allow { private: true, hosts: Vec::new() };

    #[test]
    fn audit_literals_are_refused_in_urls_unless_allowed() {
        for literal in AUDIT_LITERALS {
            let url = format!("http://[{literal}]/x");
            let error = check_url(&url, &NONE).unwrap_err();
            assert!(error.contains("non-public"), "{url}: {error}");
            assert!(check_url(&url, &ALL).is_ok(), "{url} when allowed");
        }
    }

    #[test]
    fn public_urls_pass() {
        for url in [
            "https://hooks.zapier.com/hooks/catch/1/abc",
            "http://93.184.216.34/x",
            "https://[2606:4700::1111]/",
            "amqps://user:pw@rabbit.example.com/prod?exchange=events&routingKey=todo",
            "nats://nats.example.com/orders.created",
            "rediss://:pw@redis.example.com/0?stream=events&maxlen=1000",
            "mqtts://broker.example.com/plant/7/events?qos=1",
        ] {
            assert!(check_url(url, &NONE).is_ok(), "{url}: {:?}", check_url(url, &NONE));
        }
    }

    #[test]
    fn private_destinations_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://api.localhost./",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/", // 127.0.0.1 as one number
            "amqp://10.0.0.5/%2f?routingKey=q",
            "nats://127.0.0.1/subject",
            "redis://localhost/?stream=s",
            "mqtt://192.168.1.9/topic",
        ] {
            let error = check_url(url, &NONE).unwrap_err();
            assert!(error.contains("non-public"), "{url}: {error}");
            assert!(check_url(url, &ALL).is_ok(), "{url} when allowed: {:?}", check_url(url, &ALL));
        }
    }

    #[test]
    fn chosen_private_hosts_are_allowed_on_their_port() {
        let allow = Allow {
            private: false,
            hosts: ["10.0.0.5:5672", "Rabbit.Internal.", "[fd00::7]:1883"]
                .iter()
                .map(|h| h.parse().unwrap())
                .collect(),
        };
        for url in [
            "amqp://10.0.0.5:5672/%2f?routingKey=q",
            "amqp://10.0.0.5/%2f?routingKey=q", // the default port is 5672
            "mqtt://[fd00::7]/t",
            "http://rabbit.internal:15672/api",
        ] {
            assert!(check_url(url, &allow).is_ok(), "{url}: {:?}", check_url(url, &allow));
        }
        for url in ["amqps://10.0.0.5/%2f?routingKey=q", "http://10.0.0.5/", "mqtt://[fd00::7]:1884/t"] {
            assert!(check_url(url, &allow).unwrap_err().contains("non-public"), "{url}");
        }
        for bad in ["", "host/path", "host:port", "user@host", "host:99999"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("HOST.example:80".parse::<AllowedHost>().unwrap().to_string(), "host.example:80");
    }

    #[test]
    fn malformed_urls_say_why() {
        assert!(check_url("not a url", &NONE).unwrap_err().contains("is not a URL"));
        assert!(check_url("ftp://example.com/", &NONE).unwrap_err().contains("must be an http, https"));
        let error = check_url("https://user:pw@example.com/", &NONE).unwrap_err();
        assert!(error.contains("credentials") && !error.contains("pw"), "{error}");
    }

    #[test]
    fn credentials_are_never_shown() {
        let shown = |text: &str| redacted(&Url::parse(text).unwrap());
        assert_eq!(
            shown("amqp://app:s3cret@rabbit.example/v?exchange=x"),
            "amqp://app:***@rabbit.example/v?exchange=x"
        );
        assert_eq!(shown("nats://t0ken@nats.example/s"), "nats://***@nats.example/s");
        assert_eq!(shown("redis://:pw@redis.example/0?stream=s"), "redis://:***@redis.example/0?stream=s");
        assert_eq!(shown("https://example.com/x"), "https://example.com/x");
        let error = check_url("amqp://app:s3cret@rabbit.example/v?exchange=x&nope=1", &NONE).unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn a_plugin_picks_the_subject_never_the_login() {
        let webhook = "nats://app:pw@nats.example.com/orders";
        let same = target(Some("nats://nats.example.com/invoices"), webhook).unwrap();
        assert_eq!(same.as_str(), "nats://app:pw@nats.example.com/invoices");
        let other = target(Some("nats://other.example.com/invoices"), webhook).unwrap();
        assert!(!has_credentials(&other), "credentials go to their own broker only");
        assert_eq!(target(None, webhook).unwrap().as_str(), webhook);
    }
}
