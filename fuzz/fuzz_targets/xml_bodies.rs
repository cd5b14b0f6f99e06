//! Every XML request body the gateway accepts, through s3s's deserializer exactly as s3s
//! parses a request body (`Deserialize` then `expect_eof`).
//!
//! Input: byte 0 picks the document type, the rest is the document.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3s::dto;
use s3s::xml::{Deserialize, Deserializer};

fn parse<T: for<'xml> Deserialize<'xml>>(xml: &[u8]) {
    let mut d = Deserializer::new(xml);
    let parsed = T::deserialize(&mut d).and_then(|value| d.expect_eof().map(|()| value));
    if std::env::var_os("FUZZ_DEBUG").is_some() {
        eprintln!("{:?}", parsed.map(|_| "parsed"));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, xml)) = data.split_first() else { return };
    match kind % 9 {
        0 => parse::<dto::CompletedMultipartUpload>(xml),
        1 => parse::<dto::Delete>(xml),
        2 => parse::<dto::BucketLifecycleConfiguration>(xml),
        3 => parse::<dto::ObjectLockConfiguration>(xml),
        4 => parse::<dto::Tagging>(xml),
        5 => parse::<dto::VersioningConfiguration>(xml),
        6 => parse::<dto::ObjectLockRetention>(xml),
        7 => parse::<dto::ObjectLockLegalHold>(xml),
        _ => parse::<dto::CreateBucketConfiguration>(xml),
    }
});
