//! Message brokers as destinations — RabbitMQ, NATS JetStream, Redis Streams and MQTT — and as
//! sources (the first three).
//!
//! A file per broker holds its URLs' parameters, its connection, publishing and consuming.
//! This module holds what they share: one connection per broker and credentials ([`pool`]),
//! the connect-time address check, and the time limit of a publish.
//!
//! Every broker gets the same message: the plugin's body, with its headers and the signature
//! headers as the broker's message headers. A publish succeeds when the broker acknowledges
//! it; the `Ok` text and the `Err` text are what the delivery log shows, never a credential.

pub mod amqp;
pub mod mqtt;
pub mod nats;
mod pool;
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use url::{Host, Url};

use crate::destination::{Allow, Transport, host_key, is_public};
use pool::Pool;

/// One message for a broker.
pub struct Message<'a> {
    /// The message id (the `webhook-id` header): stable across retries, so brokers that
    /// deduplicate (JetStream) drop a repeat.
    pub id: &'a str,
    /// The plugin's headers, then the signature headers.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Message<'_> {
    /// The value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A message as a source's broker gave it.
pub struct Received {
    pub body: Vec<u8>,
    /// The broker's id for it, the same when the message is given again.
    pub broker_id: Option<String>,
    /// Why it cannot be an event whatever its body says (a stream entry without a `body`).
    pub problem: Option<String>,
}

/// Checks a broker URL's parameters (its host is checked by the caller).
pub fn check(transport: Transport, url: &Url) -> Result<(), String> {
    match transport {
        Transport::Http => Ok(()),
        Transport::Amqp => amqp::Target::parse(url).map(drop),
        Transport::Nats => nats::Target::parse(url).map(drop),
        Transport::Redis => redis::Target::parse(url).map(drop),
        Transport::Mqtt => mqtt::Target::parse(url).map(drop),
    }
}

/// The brokers this host publishes to, one connection each per credentials.
pub struct Brokers {
    amqp: Pool<amqp::Connection>,
    nats: Pool<nats::Connection>,
    redis: Pool<redis::Connection>,
    mqtt: Pool<mqtt::Connection>,
    allow: Allow,
    /// For one publish, connecting included.
    timeout: Duration,
}

impl Brokers {
    pub fn new(allow: Allow, timeout: Duration) -> Brokers {
        Brokers {
            amqp: Pool::default(),
            nats: Pool::default(),
            redis: Pool::default(),
            mqtt: Pool::default(),
            allow,
            timeout,
        }
    }

    /// Publishes `message` where `url` says; `Ok` with the broker's acknowledgement.
    pub async fn publish(&self, url: &Url, message: &Message<'_>) -> Result<String, String> {
        let Some(transport) = Transport::of(url).filter(|t| *t != Transport::Http) else {
            return Err(format!("{} is not a broker", url.scheme()));
        };
        let allow = &self.allow;
        let publish = async {
            match transport {
                Transport::Amqp => {
                    let target = amqp::Target::parse(url)?;
                    let connect = || amqp::Connection::open(url, allow);
                    self.amqp.get(&connection_key(url), connect).await?.publish(&target, message).await
                }
                Transport::Nats => {
                    let target = nats::Target::parse(url)?;
                    let connect = || nats::Connection::open(url, allow);
                    self.nats.get(&connection_key(url), connect).await?.publish(&target, message).await
                }
                Transport::Redis => {
                    let target = redis::Target::parse(url)?;
                    let connect = || redis::Connection::open(url, &target, allow);
                    let key = format!("{}#{}", connection_key(url), target.db);
                    self.redis.get(&key, connect).await?.publish(&target, message).await
                }
                Transport::Mqtt => {
                    let target = mqtt::Target::parse(url)?;
                    let connect = || mqtt::Connection::open(url, &target, allow);
                    let key = format!("{}#{:?}", connection_key(url), target.version);
                    self.mqtt.get(&key, connect).await?.publish(&target, message).await
                }
                Transport::Http => unreachable!("filtered out above"),
            }
        };
        let endpoint = endpoint(url);
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(acked)) => Ok(acked),
            Ok(Err(error)) => Err(format!("{} {endpoint}: {error}", transport.name())),
            Err(_) => Err(format!("{} {endpoint}: timed out after {:?}", transport.name(), self.timeout)),
        }
    }
}

/// What identifies a connection: scheme, credentials, host, port and path's first segment
/// (a RabbitMQ vhost). Kept in memory only: it holds the credentials.
fn connection_key(url: &Url) -> String {
    let vhost = url.path_segments().and_then(|mut s| s.next()).unwrap_or_default();
    format!(
        "{}://{}:{}@{}:{}/{vhost}",
        url.scheme(),
        url.username(),
        url.password().unwrap_or_default(),
        crate::destination::host(url).as_ref().map(host_key).unwrap_or_default(),
        crate::destination::port(url),
    )
}

/// `host:port`, as errors name the broker.
fn endpoint(url: &Url) -> String {
    let host = crate::destination::host(url);
    format!("{}:{}", host.as_ref().map(host_key).unwrap_or_default(), crate::destination::port(url))
}

/// The address to connect to for `url`'s host: resolved now, and refused unless public or
/// allowed — the check of the address actually connected to (a DNS answer cannot point a
/// webhook at the host's own network). Brokers reached without TLS are connected to at this
/// address; with TLS, by name (a name that resolves elsewhere then cannot prove it is that
/// name).
async fn vet(url: &Url, allow: &Allow) -> Result<SocketAddr, String> {
    let port = crate::destination::port(url);
    let host = crate::destination::host(url).ok_or("the URL has no host")?;
    let key = host_key(&host);
    let found: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![(ip, port).into()],
        Host::Ipv6(ip) => vec![(ip, port).into()],
        Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {name}: {e}"))?
            .collect(),
    };
    if allow.permits(&key, port) {
        return found.first().copied().ok_or_else(|| format!("{key} has no address"));
    }
    found.iter().copied().find(|a| is_public(a.ip())).ok_or_else(|| {
        let all: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
        format!(
            "{key} resolves to non-public addresses only ({}); refused (operators can allow it with \
             --allow-destination-host)",
            all.join(", ")
        )
    })
}

/// A URL's query parameters, refusing any not in `known` and any given twice.
fn parameters(url: &Url, known: &[&str]) -> Result<std::collections::HashMap<String, String>, String> {
    let mut found = std::collections::HashMap::new();
    for (name, value) in url.query_pairs() {
        if !known.contains(&name.as_ref()) {
            let takes = match known {
                [] => "no parameters".to_owned(),
                _ => known.join(", "),
            };
            return Err(format!("unknown parameter {name:?}; this scheme takes {takes}"));
        }
        if found.insert(name.to_string(), value.to_string()).is_some() {
            return Err(format!("parameter {name:?} is given twice"));
        }
    }
    Ok(found)
}

/// The URL's path without its leading `/`, percent-decoded.
fn path_text(url: &Url) -> Result<String, String> {
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    percent_decode(path)
}

fn percent_decode(text: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| format!("{text:?} is not UTF-8 once decoded"))
}

/// The URL's user name and password, percent-decoded (`None` when it has neither).
fn credentials(url: &Url) -> Result<Option<(String, Option<String>)>, String> {
    if !crate::destination::has_credentials(url) {
        return Ok(None);
    }
    let user = percent_decode(url.username())?;
    let password = url.password().map(percent_decode).transpose()?;
    Ok(Some((user, password)))
}
