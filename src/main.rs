//! The `profiledb` binary: everything happens in [`profiledb::cli`].
//!
//! Memory comes from mimalloc, as in DataFusion's own CLI: it keeps freed
//! memory for reuse, where the system allocator maps and unmaps large
//! buffers, and a query that frees and allocates column buffers of
//! megabytes then pays the kernel to zero fresh pages over and over. It
//! keeps freed memory ten seconds instead of its default one
//! ([`alloc_tuning`]): a run frees and reallocates such buffers
//! throughout, and memory handed back costs a page fault and a zeroed page
//! at its next touch. It is built without transparent huge pages
//! (`no_thp`): on a huge page the kernel zeroes 2 MiB at the first touch of
//! any byte of it, which raised an incremental run's peak memory by a
//! fifth and its time in the kernel with it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alloc_tuning::keep_freed_memory_for(std::time::Duration::from_secs(10));
    profiledb::cli::main()
}
