//! Live heap bytes of this process, counted by the global allocator (`stats_alloc`, a thin
//! counting wrapper over the system allocator; chosen so the harness needs no `unsafe` of its
//! own). Memory per election is the growth of live bytes while N elections are held, which,
//! unlike the resident set size, neither rounds to pages nor counts memory the allocator keeps
//! after a free.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed by this process (a realloc counts its growth as
/// allocated and its shrinkage as freed).
pub fn live_bytes() -> u64 {
    let s = GLOBAL.stats();
    (s.bytes_allocated as u64).saturating_sub(s.bytes_deallocated as u64)
}
