//! Redis Streams: `redis(s)://[user:password@]host[:port][/db]?stream=S[&maxlen=N]`.
//!
//! Each message is one `XADD` entry: a field per header (the signature headers among them),
//! then a `body` field. With `maxlen` the stream is trimmed to about that many entries (`MAXLEN
//! ~`, Redis's cheap trim). The attempt succeeds when Redis answers with the entry's id.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo};
use url::Url;

use super::{Message, parameters, path_text};
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
        let client =
            redis::Client::open(connection_info(url, target.db, address)?).map_err(|e| e.to_string())?;
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

/// The connection settings for `url` (without our parameters), at `address` unless TLS
/// needs the name.
pub fn connection_info(
    url: &Url,
    db: i64,
    address: std::net::SocketAddr,
) -> Result<redis::ConnectionInfo, String> {
    let mut plain = url.clone();
    plain.set_query(None);
    plain.set_path("");
    let info = plain.into_connection_info().map_err(|e| e.to_string())?;
    let settings = info.redis_settings().clone().set_db(db);
    let info = info.set_redis_settings(settings);
    Ok(match Transport::tls(url) {
        true => info,
        false => info.set_addr(ConnectionAddr::Tcp(address.ip().to_string(), address.port())),
    })
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
