//! Where a write came from: the network address of the HTTP request or device connection
//! being served, held in a task-local for as long as it is served, and taken by every write
//! when it is queued so that the events it appends record it (`events.source`).

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static SOURCE: Option<IpAddr>;
}

/// Runs `work` with `source` as the address its writes came from.
pub async fn with_source<F: Future>(source: Option<IpAddr>, work: F) -> F::Output {
    SOURCE.scope(source, work).await
}

/// The address the running task serves, if it serves one (`None` in the server's own tasks).
pub fn current_source() -> Option<IpAddr> {
    SOURCE.try_with(|s| *s).ok().flatten()
}

/// The stored form of an address: IPv4 as dotted quad, also when it arrived IPv4-mapped.
pub(super) fn stored(source: IpAddr) -> String {
    source.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_source_is_seen_inside_its_scope_only() {
        let addr: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(current_source(), None);
        let inside = with_source(Some(addr), async { current_source() }).await;
        assert_eq!(inside, Some(addr));
        assert_eq!(stored(addr), "10.1.2.3");
        assert_eq!(current_source(), None);
    }
}
