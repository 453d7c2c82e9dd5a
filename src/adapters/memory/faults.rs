//! Failure injection shared by the fakes: "the next N calls of operation X fail with kind K",
//! and a log of every call made, to count calls and to prove that none happened. Each fake
//! names its operations with an enum, so a fault planned for a misspelt operation cannot
//! compile instead of silently never firing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::{ErrorKind, PortError};

/// Shut `gate` when the last of `left` more calls (of `op`, or of any operation) is made.
#[derive(Debug)]
struct ShutAfter<Op> {
    op: Option<Op>,
    left: usize,
    gate: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Fault<Op> {
    op: Op,
    kind: ErrorKind,
    /// Calls to let through first.
    skip: usize,
    remaining: usize,
}

/// Planned failures and the call log of one fake, whose operations are the variants of `Op`.
#[derive(Debug)]
pub struct Faults<Op> {
    planned: Mutex<Vec<Fault<Op>>>,
    delays: Mutex<Vec<(Op, Duration, usize)>>,
    calls: Mutex<Vec<Op>>,
    /// While this gate is shut every call hangs: the process is, in effect, dead.
    gate: Mutex<Option<Arc<AtomicBool>>>,
    /// A gate to shut after more calls.
    shut_after: Mutex<Option<ShutAfter<Op>>>,
}

impl<Op> Default for Faults<Op> {
    fn default() -> Self {
        Self {
            planned: Mutex::default(),
            delays: Mutex::default(),
            calls: Mutex::default(),
            gate: Mutex::default(),
            shut_after: Mutex::default(),
        }
    }
}

impl<Op: Copy + Eq + Into<&'static str>> Faults<Op> {
    /// Makes the next `times` calls of `op` fail with `kind`.
    pub fn fail_next(&self, op: Op, kind: ErrorKind, times: usize) {
        self.planned.lock().expect("fault plan lock").push(Fault { op, kind, skip: 0, remaining: times });
    }

    /// Makes only the `n`-th call of `op` from now (1-based) fail with `kind`.
    pub fn fail_nth(&self, op: Op, kind: ErrorKind, n: usize) {
        self.planned.lock().expect("fault plan lock").push(Fault { op, kind, skip: n.saturating_sub(1), remaining: 1 });
    }

    /// Hangs every call while `gate` is true (a crash, seen from outside).
    pub fn hang_while(&self, gate: Arc<AtomicBool>) {
        *self.gate.lock().expect("gate lock") = Some(gate);
    }

    /// Shuts `gate` as the `n`-th call from now (of `op`, or of any operation) is made: that
    /// call still runs, every later call of a fake watching the gate hangs, as if the process
    /// died right after it. `n` = 0 shuts it at once.
    pub fn shut_after(&self, op: Option<Op>, n: usize, gate: Arc<AtomicBool>) {
        if n == 0 {
            gate.store(true, Ordering::SeqCst);
        } else {
            *self.shut_after.lock().expect("shut lock") = Some(ShutAfter { op, left: n, gate });
        }
    }

    /// Makes the next `times` calls of `op` take `delay` (tokio time) before answering.
    pub fn delay_next(&self, op: Op, delay: Duration, times: usize) {
        self.delays.lock().expect("delay plan lock").push((op, delay, times));
    }

    /// Waits out a planned delay of `op`, then [`Faults::check`]s it.
    pub async fn enter(&self, op: Op) -> Result<(), PortError> {
        let gate = self.gate.lock().expect("gate lock").clone();
        if gate.is_some_and(|g| g.load(Ordering::SeqCst)) {
            std::future::pending::<()>().await;
        }
        let delay = {
            let mut delays = self.delays.lock().expect("delay plan lock");
            delays.iter_mut().find(|(o, _, n)| *o == op && *n > 0).map(|(_, d, n)| {
                *n -= 1;
                *d
            })
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.check(op)
    }

    /// Logs a call of `op` and fails it if a fault is planned.
    pub fn check(&self, op: Op) -> Result<(), PortError> {
        self.calls.lock().expect("call log lock").push(op);
        let mut shut = self.shut_after.lock().expect("shut lock");
        if let Some(armed) = shut.as_mut()
            && armed.op.is_none_or(|o| o == op)
        {
            armed.left -= 1;
            if armed.left == 0
                && let Some(armed) = shut.take()
            {
                armed.gate.store(true, Ordering::SeqCst);
            }
        }
        drop(shut);
        let mut planned = self.planned.lock().expect("fault plan lock");
        if let Some(fault) = planned.iter_mut().find(|f| f.op == op && f.remaining > 0) {
            if fault.skip > 0 {
                fault.skip -= 1;
                return Ok(());
            }
            fault.remaining -= 1;
            return Err(PortError::new(fault.kind, op.into(), format!("injected {:?}", fault.kind)));
        }
        Ok(())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Op> {
        self.calls.lock().expect("call log lock").clone()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: Op) -> usize {
        self.calls.lock().expect("call log lock").iter().filter(|c| **c == op).count()
    }
}
