//! How long a client ID metadata document is cached, from its response's `Cache-Control`,
//! `Expires` and `Date` fields (`CimdOptions::ttl`, default options).
//!
//! Input: header lines, `name: value`, one per line; lines that are not a valid field are
//! left out (by the target, before both the code and the oracle see the fields).
//!
//! Invariants, against an independent reading of the fields (`mcpauth_fuzz::broker::cache_rule`):
//! - `no-store`, `no-cache`, `max-age=0`, an unreadable first `max-age` (not digits, bare or
//!   in one pair of quotes, or past 64 bits) or a `Cache-Control` field that is not visible
//!   ASCII: not cached;
//! - a first `max-age` of N seconds: cached for N clamped to 5 minutes – 24 hours;
//! - no `max-age` and an `Expires` field: not cached, or cached within 5 minutes – 24 hours;
//! - neither: cached for the default hour.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mcpauth::__fuzzing::broker::cimd_cache_ttl;
use mcpauth_fuzz::broker::{CacheRule, cache_rule};

const MIN: Duration = Duration::from_secs(5 * 60);
const MAX: Duration = Duration::from_secs(24 * 3600);
const DEFAULT: Duration = Duration::from_secs(3600);

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut fields = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        fields.push((name.as_str().to_owned(), value.as_bytes().to_vec()));
        headers.append(name, value);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let ttl = cimd_cache_ttl(&headers, now);
    match cache_rule(&fields) {
        CacheRule::NotCached => assert_eq!(ttl, None, "{fields:?}"),
        CacheRule::MaxAge(seconds) => {
            assert_eq!(
                ttl,
                Some(Duration::from_secs(seconds).clamp(MIN, MAX)),
                "{fields:?}"
            );
        }
        CacheRule::ByExpires => assert!(
            ttl.is_none_or(|ttl| (MIN..=MAX).contains(&ttl)),
            "{ttl:?} for {fields:?}"
        ),
        CacheRule::Default => assert_eq!(ttl, Some(DEFAULT), "{fields:?}"),
    }
});
