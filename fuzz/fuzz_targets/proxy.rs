//! The PROXY protocol header (`proxy::scan` and `proxy::Parser`): never panics; `scan` never
//! reports a header longer than its input or than `MAX_HEADER`; its verdict on the stream so
//! far never changes once it is given (invalid stays invalid, a header stays the same
//! header); a `Parser` fed the stream in chunks agrees with `scan` after every chunk; and
//! what it wants (`Parser::wanted`) ends exactly where the header does.
//!
//! Input: the stream cut into chunks (`oneloop_fuzz::chunks`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oneloop::proto::proxy::{self, Parser, Progress, Scan, MAX_HEADER};

fuzz_target!(|data: &[u8]| {
    let chunks = oneloop_fuzz::chunks(data);
    let all = proxy::scan(&chunks.concat());
    let mut parser = Parser::new();
    let mut so_far = Vec::new();
    let mut verdict: Option<Scan> = None;
    let mut done = false;
    for chunk in chunks {
        let before = so_far.len();
        so_far.extend_from_slice(chunk);
        let scan = proxy::scan(&so_far);
        if let Scan::Header { len, .. } = scan {
            assert!(
                len <= so_far.len(),
                "a {len}-byte header in {} bytes",
                so_far.len()
            );
            assert!(len <= MAX_HEADER);
        }
        if let Some(earlier) = verdict {
            assert_eq!(scan, earlier, "the verdict changed with more bytes");
        } else if scan != Scan::NeedMore {
            verdict = Some(scan);
        }
        match (parser.feed(chunk), scan) {
            (Progress::NeedMore, Scan::NeedMore) => {}
            (Progress::Invalid(a), Scan::Invalid(b)) => assert_eq!(a, b),
            (Progress::Done { header, used }, Scan::Header { header: h, len }) => {
                assert_eq!(header, h);
                // The first chunk that completes the header holds its end; after it, `used`
                // is 0.
                let expected = if done {
                    0
                } else {
                    len.checked_sub(before)
                        .expect("the header ends in this chunk")
                };
                assert_eq!(used, expected, "the header is {len} bytes");
                assert!(used <= chunk.len());
                done = true;
            }
            (progress, scan) => panic!("the parser says {progress:?}, scan {scan:?}"),
        }
        if let Some(wanted) = parser.wanted() {
            match all {
                Scan::NeedMore => {}
                Scan::Header { len, .. } => assert_eq!(so_far.len() + wanted, len),
                Scan::Invalid(why) => panic!("wanted {wanted} more of a bad header: {why}"),
            }
        }
    }
});
