//! A list of keys held in one value: each key's length (u32, big-endian), then the key. In
//! sled a new key costs far more than a longer value, so what a whole ingest group writes
//! once per record (an expiry time, a queue place) is one entry naming the group's keys.

/// The value listing `keys`.
pub(super) fn encode<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut value = Vec::new();
    for key in keys {
        let length = u32::try_from(key.len()).expect("keys are short");
        value.extend_from_slice(&length.to_be_bytes());
        value.extend_from_slice(key);
    }
    value
}

/// The keys `value` lists; `None` when it is cut short.
pub(super) fn decode(mut value: &[u8]) -> Option<Vec<&[u8]>> {
    let mut keys = Vec::new();
    while let Some((length, rest)) = value.split_first_chunk::<4>() {
        let (key, rest) = rest.split_at_checked(u32::from_be_bytes(*length) as usize)?;
        keys.push(key);
        value = rest;
    }
    value.is_empty().then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_back_and_a_cut_one_is_refused() {
        let keys: [&[u8]; 3] = [b"c1\0e1", b"", b"c2\0\xffe2"];
        let value = encode(keys);
        assert_eq!(decode(&value).unwrap(), keys);
        assert_eq!(decode(&[]).unwrap(), Vec::<&[u8]>::new());
        assert!(decode(&value[..value.len() - 1]).is_none());
        assert!(decode(&value[..2]).is_none());
    }
}
