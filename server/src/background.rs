//! Work that must leave the CPU to dispatch (password checks, and the backup, verification and
//! export commands that run beside a live server) runs at the lowest CPU priority: nice 19. On
//! Linux the nice value belongs to a thread, so each such thread lowers itself.

/// The nice value of background work: the lowest priority.
pub const NICE: i32 = 19;

/// Lowers the calling thread to [`NICE`]. Failing leaves it at the normal priority, which is
/// still correct, and says so in the log.
pub fn lower_this_thread(what: &str) {
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::warn!("{what} keeps the normal CPU priority: {e}");
    }
}
