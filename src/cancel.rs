//! Cancel-key registry: the one cross-worker path of the gateway.
//!
//! An agent's CancelRequest arrives on a new connection that SO_REUSEPORT may
//! hand to any worker, while the session it targets lives on its own worker.
//! Each worker owns one shard; the process id sluice hands the agent encodes
//! the shard index, so a cancel locks exactly one shard. Shards are touched at
//! session start, session end and on a cancel — never per statement — so the
//! locks stay off the hot path and are uncontended in practice.
//!
//! A session that is holding a statement for approval has nothing running
//! upstream: once the key checks out here, the session's pending approval
//! is cancelled in the approval registry (`ApprovalRegistry::cancel_process`,
//! which wakes the held session on its worker) instead of forwarding the
//! cancel to the database (see `forward_cancel` in `session::pg`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use subtle::ConstantTimeEq;

use crate::tls::UpstreamTls;

/// Bits of the agent-visible process id that carry the session number; the
/// bits above carry the worker index. PostgreSQL process ids are positive
/// 32-bit integers, so the top bit stays clear.
const SESSION_BITS: u32 = 20;
const SESSION_MASK: u32 = (1 << SESSION_BITS) - 1;
/// Worker indices that fit in the remaining 11 bits of a positive i32.
pub const WORKERS_MAX: usize = 1 << (31 - SESSION_BITS);

/// Where to send a cancel for one session.
#[derive(Clone)]
pub struct CancelTarget {
    pub secret_key: [u8; 4],
    pub upstream_address: SocketAddr,
    pub upstream_tls: Option<UpstreamTls>,
    pub upstream_process_id: u32,
    pub upstream_secret_key: Vec<u8>,
}

#[derive(Default)]
struct Shard {
    sessions: HashMap<u32, CancelTarget>,
    next: u32,
}

/// The registry shared by all workers.
#[derive(Clone)]
pub struct CancelRegistry {
    shards: Arc<[Mutex<Shard>]>,
}

impl CancelRegistry {
    pub fn new(workers: usize) -> Self {
        assert!(workers > 0 && workers <= WORKERS_MAX);
        CancelRegistry {
            shards: (0..workers).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Registers a session on `worker` and returns the agent-visible process id.
    /// Returns None only if the worker already holds 2^20 live sessions.
    pub fn register(&self, worker: usize, target: CancelTarget) -> Option<u32> {
        let mut shard = self.shards[worker]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if shard.sessions.len() as u32 >= SESSION_MASK {
            return None;
        }
        loop {
            shard.next = (shard.next + 1) & SESSION_MASK;
            let candidate = shard.next;
            // Session number 0 is skipped so a process id is never 0.
            if candidate == 0 && worker == 0 {
                continue;
            }
            let process_id = ((worker as u32) << SESSION_BITS) | candidate;
            if let std::collections::hash_map::Entry::Vacant(slot) =
                shard.sessions.entry(process_id)
            {
                slot.insert(target);
                return Some(process_id);
            }
        }
    }

    pub fn unregister(&self, worker: usize, process_id: u32) {
        let mut shard = self.shards[worker]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shard.sessions.remove(&process_id);
    }

    /// Finds the session a cancel request names, checking its secret in
    /// constant time. Unknown ids and wrong secrets are indistinguishable.
    pub fn lookup(&self, process_id: u32, secret_key: &[u8]) -> Option<CancelTarget> {
        let worker = (process_id >> SESSION_BITS) as usize;
        let shard = self.shards.get(worker)?;
        let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let target = shard.sessions.get(&process_id)?;
        if secret_key.len() == target.secret_key.len()
            && bool::from(target.secret_key.ct_eq(secret_key))
        {
            Some(target.clone())
        } else {
            None
        }
    }

    pub fn live_sessions(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).sessions.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(secret: [u8; 4]) -> CancelTarget {
        CancelTarget {
            secret_key: secret,
            upstream_address: "127.0.0.1:5432".parse().unwrap(),
            upstream_tls: None,
            upstream_process_id: 77,
            upstream_secret_key: vec![1, 2, 3, 4],
        }
    }

    #[test]
    fn process_id_routes_to_the_registering_worker() {
        let registry = CancelRegistry::new(4);
        let a = registry.register(0, target([1; 4])).unwrap();
        let b = registry.register(3, target([2; 4])).unwrap();
        assert_ne!(a, 0);
        assert_eq!((b >> SESSION_BITS) as usize, 3);
        assert!(i32::try_from(b).is_ok(), "process ids must be positive i32");
        assert_eq!(registry.lookup(b, &[2; 4]).unwrap().upstream_process_id, 77);
        assert!(registry.lookup(b, &[1; 4]).is_none(), "wrong secret");
        assert!(registry.lookup(a ^ (1 << SESSION_BITS), &[1; 4]).is_none());
        registry.unregister(3, b);
        assert!(registry.lookup(b, &[2; 4]).is_none());
        assert_eq!(registry.live_sessions(), 1);
    }

    #[test]
    fn ids_are_unique_among_live_sessions() {
        let registry = CancelRegistry::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(registry.register(0, target([0; 4])).unwrap()));
        }
    }

    #[test]
    fn unknown_worker_index_is_not_found() {
        let registry = CancelRegistry::new(2);
        assert!(registry.lookup(5 << SESSION_BITS | 1, &[0; 4]).is_none());
    }
}
