//! Wire protocol codecs.
//!
//! Every codec under this module is sans-IO: it only looks at byte slices the
//! session already holds and writes into buffers the session owns, so the same
//! code serves the monoio session loop, the tests, the fuzzers and the benches.

pub mod pg;
