//! The connection loop: connect, serve the stream until it breaks, wait, reconnect; and what
//! the task does with commands while offline and while online.

use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, XmppStreamElement};
use tracing::{debug, info, warn};

use super::super::{Backoff, Inbound, LinkError, LinkStatus, Stream, connect};
use super::rooms::Room;
use super::{Command, Consumer, INBOUND_QUEUE, LinkTask, reserve, write};
use crate::telemetry;

/// Stanzas written before one flush, so bursts share TCP segments.
const WRITE_BATCH: usize = 64;
/// First reconnection delay and its cap.
const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// A server that was up this recently is most likely restarting: it is tried at least every
/// [`RECENT_CAP`], so the bridge is back within a second or two of it, not after a long
/// backoff built up during a short outage.
const RECENTLY_UP: Duration = Duration::from_secs(60);
const RECENT_CAP: Duration = Duration::from_secs(1);

/// What woke the online loop.
enum Wake {
    Cancelled,
    Command(Command),
    Read(Box<Option<Result<FallibleStreamElement, ReadError>>>),
    Tick,
}

fn unparseable(error: &dyn std::fmt::Display) {
    warn!(%error, "unparseable stanza ignored");
    metrics::counter!(telemetry::DROPPED, "reason" => "unparseable_stanza").increment(1);
}

impl LinkTask {
    /// Connects and reconnects until cancelled, then fails whatever still waits.
    pub(super) async fn run(mut self) {
        let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
        let mut last_online: Option<tokio::time::Instant> = None;
        loop {
            self.state
                .send_modify(|s| s.status = LinkStatus::Connecting);
            let settings = self.settings.clone();
            let tracker = self.tracker.clone();
            let attempt = async move { connect(&settings, &tracker).await };
            let Some(outcome) = self.serve_offline(attempt).await else {
                break;
            };
            match outcome {
                Ok((stream, bound)) => {
                    metrics::counter!(telemetry::CONNECTS, "result" => "ok").increment(1);
                    backoff.reset();
                    let reason = self.online(stream, bound).await;
                    last_online = Some(tokio::time::Instant::now());
                    if self.cancel.is_cancelled() {
                        break;
                    }
                    warn!(%reason, "XMPP link lost; reconnecting");
                    self.went_offline(reason);
                }
                Err(e) => {
                    let result = if matches!(e, LinkError::Auth(_)) {
                        "auth_failed"
                    } else {
                        "error"
                    };
                    metrics::counter!(telemetry::CONNECTS, "result" => result).increment(1);
                    warn!(error = %e, endpoint = %self.settings.endpoint, "XMPP connection attempt failed");
                    self.state.send_modify(|s| {
                        s.status = LinkStatus::Offline;
                        s.last_error = Some(e.to_string());
                    });
                }
            }
            let recently_up = last_online.is_some_and(|t| t.elapsed() < RECENTLY_UP);
            let delay = if recently_up {
                backoff.next_delay().min(RECENT_CAP)
            } else {
                backoff.next_delay()
            };
            debug!(?delay, "waiting before the next connection attempt");
            if self
                .serve_offline(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
        }
        for room in self.rooms.values_mut() {
            room.settle(Err(LinkError::Closed));
        }
        self.state.send_modify(|s| {
            s.status = LinkStatus::Offline;
            s.joined.clear();
            s.last_error = Some("shut down".into());
        });
        metrics::gauge!(telemetry::LINK_UP).set(0.0);
        self.deliver();
        if let Consumer::Inline(handler) = &mut self.consumer {
            handler.stopped();
        }
        info!("XMPP link stopped");
    }

    /// Runs `fut` while answering commands as an offline link does; `None` once cancelled.
    async fn serve_offline<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            self.deliver();
            let cmd = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                result = &mut fut => return Some(result),
                Some(permit) = reserve(self.consumer.queue()), if !self.outq.is_empty() => {
                    if let Some(item) = self.outq.pop_front() {
                        permit.send(item);
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => cmd,
            };
            self.command_offline(cmd);
        }
    }

    fn down_error(&self) -> LinkError {
        LinkError::Down(
            self.state
                .borrow()
                .last_error
                .clone()
                .unwrap_or_else(|| "connecting".into()),
        )
    }

    fn command_offline(&mut self, cmd: Command) {
        match cmd {
            Command::Send { done, .. } => {
                let _ = done.send(Err(self.down_error()));
            }
            Command::Join { room, nick, done } => {
                // Remembered, and joined as soon as the link is back.
                self.rooms.entry(room).or_insert_with(|| Room::new(nick));
                let _ = done.send(Err(self.down_error()));
            }
            Command::Leave { room, done } => {
                if let Some(mut r) = self.rooms.remove(&room) {
                    r.settle(Err(LinkError::Down("left".into())));
                    self.outq.push_back(Inbound::Left { room });
                }
                let _ = done.send(());
            }
        }
    }

    fn went_offline(&mut self, reason: String) {
        // A new stream is in no room: there is nothing left to wait for.
        self.leaving.clear();
        for room in self.rooms.values_mut() {
            room.joined = false;
            room.join_sent = None;
            room.retry_at = None;
            room.settle(Err(LinkError::Down(reason.clone())));
        }
        self.state.send_modify(|s| {
            s.status = LinkStatus::Offline;
            s.bound = None;
            s.joined.clear();
            s.last_error = Some(reason.clone());
        });
        metrics::gauge!(telemetry::LINK_UP).set(0.0);
        metrics::gauge!(telemetry::ROOMS_JOINED).set(0.0);
        self.outq.push_back(Inbound::Offline { reason });
    }

    /// Serves one stream until it breaks or the link is cancelled; returns why it ended.
    pub(super) async fn online(&mut self, mut stream: Stream, bound: FullJid) -> String {
        info!(jid = %bound, endpoint = %self.settings.endpoint, "XMPP link online");
        self.state.send_modify(|s| {
            s.status = LinkStatus::Online;
            s.bound = Some(bound.clone());
            s.joined.clear();
            s.last_error = None;
            s.sessions += 1;
        });
        metrics::gauge!(telemetry::LINK_UP).set(1.0);
        self.outq.push_back(Inbound::Online { bound });
        let rooms: Vec<BareJid> = self.rooms.keys().cloned().collect();
        for room in rooms {
            if let Err(e) = self.send_join(&mut stream, &room).await {
                return e;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pings = 0u64;
        loop {
            self.deliver();
            let wake = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Wake::Cancelled,
                Some(permit) = reserve(self.consumer.queue()), if !self.outq.is_empty() => {
                    if let Some(item) = self.outq.pop_front() {
                        permit.send(item);
                    }
                    continue;
                }
                Some(cmd) = self.commands.recv() => Wake::Command(cmd),
                item = stream.next(), if self.outq.len() < INBOUND_QUEUE => Wake::Read(Box::new(item)),
                _ = tick.tick() => Wake::Tick,
            };
            let step = match wake {
                Wake::Cancelled => {
                    self.close(&mut stream).await;
                    return "shutting down".into();
                }
                Wake::Command(cmd) => self.commands_online(cmd, &mut stream).await,
                Wake::Tick => match self.retry_joins(&mut stream).await {
                    Ok(()) => self.self_ping(&mut stream).await,
                    Err(e) => Err(e),
                },
                Wake::Read(item) => match *item {
                    Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                        self.on_stanza(stanza, &mut stream).await
                    }
                    Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::StreamError(e)))) => {
                        Err(e.to_string())
                    }
                    Some(Ok(FallibleStreamElement::Ok(_))) => Ok(()),
                    Some(Ok(FallibleStreamElement::Err(e))) => {
                        unparseable(&e);
                        Ok(())
                    }
                    Some(Err(ReadError::ParseError(e))) => {
                        unparseable(&e);
                        Ok(())
                    }
                    Some(Err(ReadError::SoftTimeout)) => {
                        pings += 1;
                        let to: Jid = self.settings.jid.domain().to_owned().into();
                        let ping = Iq::from_get(format!("ping-{pings}"), Ping).with_to(to);
                        write(&mut stream, Stanza::Iq(ping)).await
                    }
                    Some(Err(ReadError::HardError(e))) => Err(format!("connection error: {e}")),
                    Some(Err(ReadError::StreamFooterReceived)) | None => {
                        Err("the server closed the stream".into())
                    }
                },
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    async fn close(&mut self, stream: &mut Stream) {
        for (room, r) in &self.rooms {
            if r.joined
                && let Ok(occupant) = room.with_resource_str(&r.nick)
            {
                let _ = stream
                    .feed(&XmppStreamElement::Stanza(Stanza::Presence(
                        Presence::unavailable().with_to(occupant),
                    )))
                    .await;
            }
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            <Stream as SinkExt<&XmppStreamElement>>::close(stream),
        )
        .await;
    }

    /// Handles `first` and whatever else is already queued, with one flush for all.
    async fn commands_online(&mut self, first: Command, stream: &mut Stream) -> Result<(), String> {
        let mut sent = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Send {
                    stanza,
                    measured,
                    done,
                } => {
                    if let Err(e) = stream
                        .feed(&XmppStreamElement::Stanza(Stanza::Message(*stanza)))
                        .await
                    {
                        let reason = format!("write failed: {e}");
                        let _ = done.send(Err(LinkError::Down(reason.clone())));
                        return Err(reason);
                    }
                    sent.push((done, measured));
                }
                Command::Join { room, nick, done } => {
                    let r = self
                        .rooms
                        .entry(room.clone())
                        .or_insert_with(|| Room::new(nick));
                    if r.joined {
                        let _ = done.send(Ok(()));
                    } else {
                        r.waiters.push(done);
                        // While a leave is unanswered the join waits for it (see `left`).
                        if r.join_sent.is_none() && !self.leaving.contains_key(&room) {
                            self.send_join(stream, &room).await?;
                        }
                    }
                }
                Command::Leave { room, done } => {
                    self.leave(stream, room).await?;
                    let _ = done.send(());
                }
            }
            if sent.len() < WRITE_BATCH {
                next = self.commands.try_recv().ok();
            }
        }
        let flushed = <Stream as SinkExt<&XmppStreamElement>>::flush(stream)
            .await
            .map_err(|e| format!("write failed: {e}"));
        for (done, measured) in sent {
            if let (Ok(()), Some(started)) = (&flushed, measured) {
                telemetry::latency::written(started);
            }
            let _ = done.send(flushed.clone().map_err(LinkError::Down));
        }
        flushed
    }
}
