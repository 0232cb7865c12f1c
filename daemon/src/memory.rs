//! The C allocator's arenas: glibc's malloc gives every thread that allocates its own arena (up
//! to 8 per core) and keeps what each arena once held resident, so a large query answered on one
//! blocking thread and the next on another keep both peaks. Two arenas are enough for the
//! daemons' few busy threads.

/// Arenas the daemons' allocator keeps at most.
pub const ARENAS: i32 = 2;

/// Caps glibc malloc's arenas at [`ARENAS`] (a no-op elsewhere). Call first thing in `main`,
/// before other threads start.
///
/// Measured need for the one `unsafe` in the workspace (BENCHMARKS.md, issue 26): the
/// collector's peak resident memory over the behavioral analyses at 10 M events was 1,234 MiB
/// with glibc's default arenas, 761 with 4, 541-569 with 2 and 476-487 with 1, at the same
/// speed within the runs' spread; two keep the daemons' concurrent threads (ingest, queries)
/// from queueing on one arena's lock.
/// `mallopt` only sets a number in the allocator's parameters: it takes no pointer and fails
/// by returning 0, which leaves the default in force.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: an FFI call with two integer arguments and no memory passed; glibc documents
    // M_ARENA_MAX as settable at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}
