//! The `expiry` tree: what to prune when. Each key starts with the time its records were
//! accepted (milliseconds since the epoch, big-endian), so a prune reads up to its cutoff:
//!
//! - `<ms>g<uuid>`: the events an ingest group accepted, their keys listed in the value
//!   (`keylist.rs`): one entry per group, not per event.
//! - `<ms>e<event key>`: one event (as versions before schema 4 wrote them).
//! - `<ms>k<scoped key>`: an `Idempotency-Key`.

use super::{StoreError, keylist};

/// What an entry expires.
pub(super) enum Expiring<'a> {
    Events(Vec<&'a [u8]>),
    Key(&'a [u8]),
}

/// The entry for events accepted together at `at_ms`.
pub(super) fn events(at_ms: u64, keys: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let id = uuid::Uuid::now_v7();
    let entry = [&at_ms.to_be_bytes()[..], b"g", id.as_bytes()].concat();
    (entry, keylist::encode(keys.iter().copied()))
}

/// The entry for an `Idempotency-Key` first used at `at_ms`.
pub(super) fn idempotency_key(at_ms: u64, scoped: &[u8]) -> Vec<u8> {
    [&at_ms.to_be_bytes()[..], b"k", scoped].concat()
}

/// The key the entries before `cutoff_ms` end at.
pub(super) fn before(cutoff_ms: u64) -> [u8; 8] {
    cutoff_ms.to_be_bytes()
}

/// When an entry's records were accepted, and what they are.
pub(super) fn read<'a>(entry: &'a [u8], value: &'a [u8]) -> Result<(u64, Expiring<'a>), StoreError> {
    let damaged =
        || StoreError::Corrupt(format!("expiry entry {}", String::from_utf8_lossy(entry).escape_debug()));
    let (at, rest) = entry.split_first_chunk::<8>().ok_or_else(damaged)?;
    let at_ms = u64::from_be_bytes(*at);
    let expiring = match rest.split_first() {
        Some((b'g', _)) => Expiring::Events(keylist::decode(value).ok_or_else(damaged)?),
        Some((b'e', key)) => Expiring::Events(vec![key]),
        Some((b'k', key)) => Expiring::Key(key),
        _ => return Err(damaged()),
    };
    Ok((at_ms, expiring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_what_they_expire_and_sort_by_time() {
        let keys: [&[u8]; 3] = [b"c1\0e1", b"", b"c2\0\xffe2"];
        let (entry, value) = events(1_000, &keys);
        let Ok((1_000, Expiring::Events(read_keys))) = read(&entry, &value) else { panic!("a group entry") };
        assert_eq!(read_keys, keys);

        let old = [&1_000u64.to_be_bytes()[..], b"e", b"c1\0e0"].concat();
        assert!(matches!(read(&old, &[]), Ok((1_000, Expiring::Events(k))) if k == [b"c1\0e0"]));
        let key = idempotency_key(999, b"t1:k1");
        assert!(matches!(read(&key, &[]), Ok((999, Expiring::Key(b"t1:k1")))));

        let (later, _) = events(1_001, &keys);
        assert!(key < entry && entry < later && later.as_slice() >= before(1_001).as_slice());
        assert!(entry.as_slice() < before(1_001).as_slice());
    }

    #[test]
    fn a_damaged_entry_is_an_error() {
        let (entry, value) = events(5, &[b"c1\0e1"]);
        assert!(read(&entry, &value[..value.len() - 1]).is_err());
        assert!(read(b"short", &[]).is_err());
        assert!(read(&[&5u64.to_be_bytes()[..], b"x"].concat(), &[]).is_err());
    }
}
