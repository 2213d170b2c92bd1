//! A bounded blocking queue on a mutex and two condition variables.
//!
//! Threads that wait here sleep in the kernel right away. Spin-then-`sched_yield` channels
//! (crossbeam's backoff) hand the CPU to other processes on a busy host, which made the
//! pipeline lose half of its CPU share under load.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receivers: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the queue inconsistent: recover the state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending half; clonable.
pub(crate) struct Sender<T>(Arc<Shared<T>>);
/// The receiving half; clonable.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `cap` items (at least 1).
pub(crate) fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap.max(1)),
            senders: 1,
            receivers: 1,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        cap: cap.max(1),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Blocks while the queue is full; gives the item back when no receiver is left.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut s = self.0.lock();
        loop {
            if s.receivers == 0 {
                return Err(item);
            }
            if s.items.len() < self.0.cap {
                s.items.push_back(item);
                drop(s);
                self.0.not_empty.notify_one();
                return Ok(());
            }
            s = self
                .0
                .not_full
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Queues the item only if there is room right now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), T> {
        let mut s = self.0.lock();
        if s.receivers == 0 || s.items.len() >= self.0.cap {
            return Err(item);
        }
        s.items.push_back(item);
        drop(s);
        self.0.not_empty.notify_one();
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// Blocks until an item arrives; `None` once the queue is empty and every sender is gone.
    pub(crate) fn recv(&self) -> Option<T> {
        let mut s = self.0.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                drop(s);
                self.0.not_full.notify_one();
                return Some(item);
            }
            if s.senders == 0 {
                return None;
            }
            s = self
                .0
                .not_empty
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// An item if one is queued now.
    pub(crate) fn try_recv(&self) -> Option<T> {
        let item = self.0.lock().items.pop_front();
        if item.is_some() {
            self.0.not_full.notify_one();
        }
        item
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.0.lock().receivers += 1;
        Receiver(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().senders -= 1;
        self.0.not_empty.notify_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receivers -= 1;
        self.0.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_and_ends_when_senders_are_gone() {
        let (tx, rx) = bounded(2);
        let h = std::thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(i) = rx.recv() {
            got.push(i);
        }
        h.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn send_fails_without_receivers_and_try_send_respects_capacity() {
        let (tx, rx) = bounded(1);
        assert!(tx.try_send(1).is_ok());
        assert_eq!(tx.try_send(2), Err(2));
        assert_eq!(rx.try_recv(), Some(1));
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }
}
