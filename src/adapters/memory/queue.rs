//! An SQS-like queue: visibility timeouts, receive counts, fresh receipt handles per
//! delivery, redrive to a dead-letter list after `max_receive_count`, long polling.
//! Time is tokio's, so tests can pause and advance it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Faults;
use crate::domain::CommandError;
use crate::ports::{CommandQueue, CommandSender, DeleteFailure, ErrorKind, PortError, QueueMessage, SendFailure};

#[derive(Debug)]
struct Stored {
    id: String,
    body: String,
    receive_count: u32,
    receipt_handle: Option<String>,
    visible_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Stored>,
    dead_letters: Vec<(String, Option<CommandError>)>,
    deleted: usize,
    next: u64,
}

/// The queue operations of the fake, for failure injection and call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum QueueOp {
    /// `receive`.
    Receive,
    /// `delete_batch`.
    DeleteBatch,
    /// `change_visibility`.
    ChangeVisibility,
    /// `send`.
    Send,
    /// `dead_letter`.
    DeadLetter,
    /// `send_batch`.
    SendBatch,
}

/// The fake queue.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<State>,
    arrived: Notify,
    visibility_timeout: Duration,
    max_receive_count: u32,
    /// Failure injection (operations `receive`, `delete_batch`, `change_visibility`, `send`,
    /// `dead_letter`).
    pub faults: Faults<QueueOp>,
}

impl MemoryQueue {
    /// Puts a message at the back of the queue, visible at once; returns its id.
    fn enqueue(&self, body: &str) -> String {
        let id = {
            let mut state = self.lock();
            state.next += 1;
            let id = format!("m-{}", state.next);
            state.messages.push_back(Stored {
                id: id.clone(),
                body: body.to_owned(),
                receive_count: 0,
                receipt_handle: None,
                visible_at: Instant::now(),
            });
            id
        };
        self.arrived.notify_waiters();
        id
    }

    /// A queue with the given default visibility timeout and redrive threshold.
    pub fn new(visibility_timeout: Duration, max_receive_count: u32) -> Self {
        Self {
            state: Mutex::default(),
            arrived: Notify::new(),
            visibility_timeout,
            max_receive_count,
            faults: Faults::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("queue lock")
    }

    /// Messages not yet deleted or dead-lettered (in flight included).
    pub fn pending(&self) -> usize {
        self.lock().messages.len()
    }

    /// Messages deleted by consumers.
    pub fn deleted(&self) -> usize {
        self.lock().deleted
    }

    /// Dead-lettered bodies, with the reason when the worker gave one (none: redrive).
    pub fn dead_letters(&self) -> Vec<(String, Option<CommandError>)> {
        self.lock().dead_letters.clone()
    }

    fn take_visible(&self, max: usize) -> Vec<QueueMessage> {
        let now = Instant::now();
        let mut state = self.lock();
        let mut out = Vec::new();
        let mut i = 0;
        while i < state.messages.len() && out.len() < max {
            if state.messages[i].visible_at > now {
                i += 1;
                continue;
            }
            if state.messages[i].receive_count >= self.max_receive_count {
                let gone = state.messages.remove(i).expect("index checked");
                state.dead_letters.push((gone.body, None));
                continue;
            }
            state.next += 1;
            let handle = format!("rh-{}", state.next);
            let m = &mut state.messages[i];
            m.receive_count += 1;
            m.receipt_handle = Some(handle.clone());
            m.visible_at = now + self.visibility_timeout;
            out.push(QueueMessage {
                message_id: m.id.clone(),
                receipt_handle: handle,
                body: m.body.clone(),
                receive_count: m.receive_count,
            });
            i += 1;
        }
        out
    }
}

#[async_trait]
impl CommandQueue for MemoryQueue {
    fn max_deliveries(&self) -> Option<u32> {
        Some(self.max_receive_count)
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<QueueMessage>, PortError> {
        self.faults.enter(QueueOp::Receive).await?;
        let deadline = Instant::now() + wait;
        loop {
            let found = self.take_visible(max.min(10));
            if !found.is_empty() || Instant::now() >= deadline {
                return Ok(found);
            }
            // Wake on a send, or re-check periodically for visibility expiry.
            let nap = (deadline - Instant::now()).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, self.arrived.notified()).await;
        }
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<Vec<DeleteFailure>, PortError> {
        self.faults.enter(QueueOp::DeleteBatch).await?;
        let mut state = self.lock();
        let mut failures = Vec::new();
        for handle in receipt_handles {
            match state.messages.iter().position(|m| m.receipt_handle.as_deref() == Some(handle)) {
                Some(i) => {
                    state.messages.remove(i);
                    state.deleted += 1;
                }
                None => failures.push(DeleteFailure {
                    receipt_handle: handle.clone(),
                    retryable: false,
                    message: "ReceiptHandleIsInvalid".into(),
                }),
            }
        }
        Ok(failures)
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), PortError> {
        self.faults.enter(QueueOp::ChangeVisibility).await?;
        let mut state = self.lock();
        let m = state
            .messages
            .iter_mut()
            .find(|m| m.receipt_handle.as_deref() == Some(receipt_handle))
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, "change_visibility", "ReceiptHandleIsInvalid"))?;
        m.visible_at = Instant::now() + timeout;
        drop(state);
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, message: &QueueMessage, reason: &CommandError) -> Result<(), PortError> {
        self.faults.enter(QueueOp::DeadLetter).await?;
        self.lock().dead_letters.push((message.body.clone(), Some(reason.clone())));
        Ok(())
    }
}

#[async_trait]
impl CommandSender for MemoryQueue {
    async fn send(&self, body: &str) -> Result<String, PortError> {
        self.faults.enter(QueueOp::Send).await?;
        Ok(self.enqueue(body))
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<Vec<SendFailure>, PortError> {
        self.faults.enter(QueueOp::SendBatch).await?;
        for body in bodies {
            self.enqueue(body);
        }
        Ok(Vec::new())
    }
}
