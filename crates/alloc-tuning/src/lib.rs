//! profiledb's allocator setting, apart from the main crate because it is
//! an FFI call: the main crate forbids `unsafe`, and this is the one
//! audited place that has it.
//!
//! mimalloc hands memory that has been free for a while back to the kernel
//! (its purge delay, a second by default). A run of the models frees and
//! allocates buffers of megabytes throughout (column chunks, index blocks,
//! hash tables), and memory handed back is zeroed by the kernel again at
//! its next touch: a 1% incremental run of the default models took about
//! 165k page faults against 117k with a longer delay. A longer delay lets
//! a run reuse what it freed, and an idle server still hands its memory
//! back once the delay has passed.

use std::ffi::c_long;
use std::time::Duration;

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (the sys crate
/// declares the options API but not this constant).
const PURGE_DELAY: mi_option_t = 15;

/// Keeps freed memory in the process for `delay` before handing it back
/// to the kernel. Call it first thing in `main`.
pub fn keep_freed_memory_for(delay: Duration) {
    let millis = c_long::try_from(delay.as_millis()).unwrap_or(c_long::MAX);
    // SAFETY: `mi_option_set` stores an integer option of the allocator
    // linked as the global one (the `mimalloc` crate builds this same
    // library); it takes no pointers and options are plain integers read
    // at each purge, so setting one while other threads allocate is sound.
    unsafe { mi_option_set(PURGE_DELAY, millis) }
}

/// How long freed memory is kept, as the allocator has it.
pub fn freed_memory_kept() -> Duration {
    // SAFETY: reads an integer option; no pointers.
    let millis = unsafe { mi_option_get(PURGE_DELAY) };
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        // mimalloc 3's default identifies the option (unless the
        // environment sets it).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(freed_memory_kept(), Duration::from_secs(1));
        }
        keep_freed_memory_for(Duration::from_secs(12));
        assert_eq!(freed_memory_kept(), Duration::from_secs(12));
    }
}
