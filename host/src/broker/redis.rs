//! Redis Streams: `redis(s)://[user:password@]host[:port][/db]?stream=S[&maxlen=N]` as a
//! destination, `redis(s)://…[/db]?stream=S&group=G[&consumer=C]` as a source.
//!
//! Each message is one `XADD` entry: a field per header (the signature headers among them),
//! then a `body` field. With `maxlen` the stream is trimmed to about that many entries (`MAXLEN
//! ~`, Redis's cheap trim). The attempt succeeds when Redis answers with the entry's id.
//!
//! A source reads a consumer group (made when missing, from the start of the stream) as
//! consumer `C` (this host's name unless given): first the entries it was given and did not
//! acknowledge before a restart, then new ones; entries another consumer left unacknowledged
//! for a minute are claimed. An entry's event is its `body` field.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use redis::{ConnectionAddr, IntoConnectionInfo};
use url::Url;

use super::{Message, Received, parameters, path_text};
use crate::destination::{Allow, Transport};

/// Where a publish goes on its server.
#[derive(Debug)]
pub struct Target {
    pub db: i64,
    pub stream: String,
    pub maxlen: Option<u64>,
}

impl Target {
    pub fn parse(url: &Url) -> Result<Target, String> {
        let mut params = parameters(url, &["stream", "maxlen"])?;
        let stream = params.remove("stream").filter(|s| !s.is_empty());
        let stream = stream.ok_or("needs ?stream=… (the stream's key)")?;
        let maxlen = match params.remove("maxlen") {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("maxlen {text:?} is not a positive whole number"))?,
            ),
        };
        let path = path_text(url)?;
        let db = match path.as_str() {
            "" => 0,
            text => text.parse().map_err(|_| format!("the path {text:?} is not a database number"))?,
        };
        Ok(Target { db, stream, maxlen })
    }
}

/// A connection that reconnects by itself when it is lost.
pub struct Connection(ConnectionManager);

impl super::pool::Live for Connection {
    fn is_live(&self) -> bool {
        true
    }
}

impl Connection {
    /// Connects to the server `url` names, at an address the destination rules allow.
    pub async fn open(url: &Url, target: &Target, allow: &Allow) -> Result<Connection, String> {
        let address = super::vet(url, allow).await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let client = redis::Client::open(connection_info(url, target.db, Some(address))?)
            .map_err(|e| e.to_string())?;
        let manager = client.get_connection_manager_with_config(config).await.map_err(|e| e.to_string())?;
        Ok(Connection(manager))
    }

    /// Adds the message to the stream.
    pub async fn publish(&self, target: &Target, message: &Message<'_>) -> Result<String, String> {
        let mut command = redis::cmd("XADD");
        command.arg(&target.stream);
        if let Some(maxlen) = target.maxlen {
            command.arg("MAXLEN").arg("~").arg(maxlen);
        }
        command.arg("*");
        for (name, value) in message.headers {
            command.arg(name).arg(value);
        }
        command.arg("body").arg(message.body);
        let mut connection = self.0.clone();
        let stream = &target.stream;
        match command.query_async::<String>(&mut connection).await {
            Ok(id) => Ok(format!("added to stream {stream:?} as entry {id}")),
            Err(error) => Err(format!("stream {stream:?}: {error}")),
        }
    }
}

/// The connection settings for `url` (without our parameters), at `address` if given, unless
/// TLS needs the name.
pub fn connection_info(
    url: &Url,
    db: i64,
    address: Option<std::net::SocketAddr>,
) -> Result<redis::ConnectionInfo, String> {
    let mut plain = url.clone();
    plain.set_query(None);
    plain.set_path("");
    let info = plain.into_connection_info().map_err(|e| e.to_string())?;
    let settings = info.redis_settings().clone().set_db(db);
    let info = info.set_redis_settings(settings);
    Ok(match address.filter(|_| !Transport::tls(url)) {
        None => info,
        Some(address) => info.set_addr(ConnectionAddr::Tcp(address.ip().to_string(), address.port())),
    })
}

/// A consumer group to take events from.
#[derive(Debug)]
pub struct Group {
    pub db: i64,
    pub stream: String,
    pub group: String,
    pub consumer: String,
}

impl Group {
    pub fn parse(url: &Url) -> Result<Group, String> {
        let mut params = parameters(url, &["stream", "group", "consumer"])?;
        let mut take = |name: &str| params.remove(name).filter(|v| !v.is_empty());
        let stream = take("stream").ok_or("needs ?stream=… (the stream's key)")?;
        let group = take("group").ok_or("needs ?group=… (the consumer group, made when missing)")?;
        let consumer = take("consumer").unwrap_or_else(host_name);
        let db = match path_text(url)?.as_str() {
            "" => 0,
            text => text.parse().map_err(|_| format!("the path {text:?} is not a database number"))?,
        };
        Ok(Group { db, stream, group, consumer })
    }
}

/// This machine's name: a consumer name that stays the same across restarts, so that what was
/// given to it before is found again.
fn host_name() -> String {
    let name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    if name.is_empty() { "wasmhook".into() } else { name }
}

/// Entries read at once.
const READ_COUNT: usize = 64;
/// How long a read waits for new entries, and how often stale ones are looked for.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// Entries another consumer left unacknowledged this long are claimed.
const CLAIM_IDLE: Duration = Duration::from_secs(60);

/// Takes the group's entries one at a time, acknowledging each once `take` returns; returns
/// when the connection fails.
pub async fn consume<F, Fut>(url: &Url, on_connected: impl FnOnce(), take: F) -> Result<(), String>
where
    F: Fn(Received) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let source = Group::parse(url)?;
    let client = redis::Client::open(connection_info(url, source.db, None)?).map_err(|e| e.to_string())?;
    let mut connection = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let (stream, group, consumer) = (&source.stream, &source.group, &source.consumer);
    let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut connection)
        .await;
    match created {
        Err(error) if error.code() != Some("BUSYGROUP") => return Err(format!("group {group:?}: {error}")),
        _ => {}
    }
    on_connected();
    // "0": what was given to this consumer and not acknowledged; ">": new entries.
    let mut from = "0".to_owned();
    let mut last_claim = std::time::Instant::now();
    loop {
        if last_claim.elapsed() >= READ_BLOCK {
            last_claim = std::time::Instant::now();
            let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(group)
                .arg(consumer)
                .arg(CLAIM_IDLE.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(READ_COUNT)
                .query_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            if !claimed.claimed.is_empty() {
                from = "0".into();
            }
        }
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(READ_COUNT);
        if from == ">" {
            read.arg("BLOCK").arg(READ_BLOCK.as_millis() as u64);
        }
        let reply: Option<StreamReadReply> = read
            .arg("STREAMS")
            .arg(stream)
            .arg(&from)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let entries: Vec<_> = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).collect();
        if entries.is_empty() && from != ">" {
            from = ">".into();
            continue;
        }
        for entry in entries {
            let body = entry.map.get("body").map(redis::from_redis_value_ref::<Vec<u8>>);
            let received = match body {
                Some(Ok(body)) => Received { body, broker_id: Some(entry.id.clone()), problem: None },
                _ => {
                    let fields: Vec<&String> = entry.map.keys().collect();
                    let problem = format!("the entry has no `body` field (it has {fields:?})");
                    Received { body: Vec::new(), broker_id: Some(entry.id.clone()), problem: Some(problem) }
                }
            };
            take(received).await;
            let _: u64 = redis::cmd("XACK")
                .arg(stream)
                .arg(group)
                .arg(&entry.id)
                .query_async(&mut connection)
                .await
                .map_err(|e| format!("acknowledging: {e}"))?;
            if from != ">" {
                from = entry.id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, String> {
        Target::parse(&Url::parse(text).unwrap())
    }

    #[test]
    fn parameters_name_the_stream() {
        let target = parse("redis://h/2?stream=events&maxlen=1000").unwrap();
        assert_eq!((target.db, target.stream.as_str(), target.maxlen), (2, "events", Some(1000)));
        assert_eq!(parse("redis://h?stream=s").unwrap().db, 0);
        assert!(parse("redis://h/0").unwrap_err().contains("needs ?stream"));
        assert!(parse("redis://h/x?stream=s").unwrap_err().contains("database number"));
        assert!(parse("redis://h/0?stream=s&maxlen=0").unwrap_err().contains("maxlen"));
    }
}
