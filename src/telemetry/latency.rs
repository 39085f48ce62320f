//! The latency the bridge adds on the call path, from its own clock: from an agent's event
//! taken in to the first request stanza written for it (`to_platform`), and from a platform
//! stanza read off the stream to the first socket.io emit it causes (`to_agent`). The task
//! doing the work carries where its measurement started, so that no port or protocol type
//! has to.

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

use super::BRIDGE_LATENCY;

tokio::task_local! {
    static STARTED: Cell<Option<Start>>;
}

/// Where a measurement starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// An agent event was taken in.
    Event(Instant),
    /// A platform stanza was read.
    Stanza(Instant),
}

/// Runs `handling` as the handling of an agent event taken in at `arrived`.
pub async fn event<F: Future>(arrived: Instant, handling: F) -> F::Output {
    STARTED
        .scope(Cell::new(Some(Start::Event(arrived))), handling)
        .await
}

/// Runs `f` as the work caused by a platform stanza read at `read`.
pub fn stanza<T>(read: Instant, f: impl FnOnce() -> T) -> T {
    STARTED.sync_scope(Cell::new(Some(Start::Stanza(read))), f)
}

/// The answer this task waited for was read at `read`: emits from now on are measured from
/// there.
pub fn answer_read(read: Instant) {
    let _ = STARTED.try_with(|s| s.set(Some(Start::Stanza(read))));
}

/// A request stanza is about to be sent: the first one for an agent event takes its
/// measurement's start, for the link to end with [`written`] once the stanza is on the socket
/// (the hand-back to this task is no part of the path to the platform).
pub fn sending() -> Option<Instant> {
    STARTED
        .try_with(|s| match s.get() {
            Some(Start::Event(t)) => {
                s.set(None);
                Some(t)
            }
            _ => None,
        })
        .ok()
        .flatten()
}

/// The request stanza whose measurement [`sending`] took at `started` is written.
pub fn written(started: Instant) {
    metrics::histogram!(BRIDGE_LATENCY, "path" => "to_platform")
        .record(started.elapsed().as_secs_f64());
}

/// An event was emitted to a socket: the first one after a stanza ends its measurement.
pub fn emitted() {
    record(|start| match start {
        Start::Stanza(t) => Some(("to_agent", t)),
        Start::Event(_) => None,
    });
}

fn record(ends: impl FnOnce(Start) -> Option<(&'static str, Instant)>) {
    let _ = STARTED.try_with(|s| {
        let Some(start) = s.get() else { return };
        if let Some((path, t)) = ends(start) {
            s.set(None);
            metrics::histogram!(BRIDGE_LATENCY, "path" => path).record(t.elapsed().as_secs_f64());
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn count(handle: &metrics_exporter_prometheus::PrometheusHandle, path: &str) -> f64 {
        super::super::counter_in(
            handle,
            &format!("{BRIDGE_LATENCY}_count"),
            &format!("path=\"{path}\""),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_stanza_and_the_first_emit_after_it_are_measured() {
        let recorder = super::super::recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let arrived = Instant::now();
        event(arrived, async {
            emitted(); // no stanza read yet: not a platform-to-agent path
            tokio::time::advance(Duration::from_micros(300)).await;
            let started = sending().expect("the event's measurement is open");
            assert_eq!(started, arrived);
            assert_eq!(sending(), None, "only the first stanza is measured");
            written(started);
            answer_read(Instant::now());
            emitted();
            emitted();
        })
        .await;
        stanza(Instant::now(), emitted);
        // Outside any measured task nothing is recorded.
        assert_eq!(sending(), None);
        emitted();
        assert_eq!(count(&handle, "to_platform"), 1.0);
        assert_eq!(count(&handle, "to_agent"), 2.0);
    }
}
