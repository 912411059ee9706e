//! What a pod's containers printed, as the kubelet keeps it: the current instance of each
//! container and the one before it, each line with the time it was written. Emulated
//! containers print one line per start (aks-sim runs no image); containers that run their
//! command for real ([`super::containers`]) have its real output.

use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;

/// The log of one container instance: chunks of output with the time they were written.
#[derive(Debug, Default, Clone)]
pub struct Instance {
    /// Unique among all instances (a follow stays on its instance).
    pub id: u64,
    pub lines: Vec<(Timestamp, Vec<u8>)>,
    /// The instance has exited.
    pub ended: bool,
}

/// The kubelet's container logs, by pod UID and container name: the instances in start order.
pub struct PodLogs {
    inner: Mutex<HashMap<(String, String), Vec<Instance>>>,
    next: std::sync::atomic::AtomicU64,
    /// Bumped on every change (a follow waits on it).
    pub changed: tokio::sync::watch::Sender<u64>,
}

impl Default for PodLogs {
    fn default() -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        PodLogs {
            inner: Mutex::default(),
            next: std::sync::atomic::AtomicU64::new(1),
            changed,
        }
    }
}

impl PodLogs {
    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Instance>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self) -> Instance {
        Instance {
            id: self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Instance::default()
        }
    }

    /// The instance `id` of the container, while the kubelet keeps it.
    pub fn instance_by_id(&self, uid: &str, container: &str, id: u64) -> Option<Instance> {
        let m = self.lock();
        m.get(&(uid.to_string(), container.to_string()))?
            .iter()
            .find(|i| i.id == id)
            .cloned()
    }

    /// A new instance of the container starts (the one before it has ended).
    pub fn start(&self, uid: &str, container: &str) {
        let mut m = self.lock();
        let v = m.entry((uid.to_string(), container.to_string())).or_default();
        if let Some(last) = v.last_mut() {
            last.ended = true;
        }
        v.push(self.fresh());
        // The kubelet keeps the current and the previous instance only.
        if v.len() > 2 {
            v.remove(0);
        }
        drop(m);
        self.notify();
    }

    /// The current instance wrote `data` (split into lines, each timestamped).
    pub fn write(&self, uid: &str, container: &str, data: &[u8]) {
        let now = Timestamp::now();
        let mut m = self.lock();
        let v = m.entry((uid.to_string(), container.to_string())).or_default();
        if v.is_empty() {
            v.push(self.fresh());
        }
        let inst = v.last_mut().expect("an instance");
        for piece in data.split_inclusive(|b| *b == b'\n') {
            match inst.lines.last_mut() {
                Some((_, l)) if !l.ends_with(b"\n") => l.extend_from_slice(piece),
                _ => inst.lines.push((now, piece.to_vec())),
            }
        }
        drop(m);
        self.notify();
    }

    /// The current instance has exited.
    pub fn end(&self, uid: &str, container: &str) {
        if let Some(last) = self
            .lock()
            .get_mut(&(uid.to_string(), container.to_string()))
            .and_then(|v| v.last_mut())
        {
            last.ended = true;
        }
        self.notify();
    }

    /// Forget a deleted pod's logs.
    pub fn forget(&self, uid: &str) {
        self.lock().retain(|(u, _), _| u != uid);
    }

    /// The current instance of the container, or with `previous` the one before it.
    pub fn instance(&self, uid: &str, container: &str, previous: bool) -> Option<Instance> {
        let m = self.lock();
        let v = m.get(&(uid.to_string(), container.to_string()))?;
        let i = if previous {
            v.len().checked_sub(2)?
        } else {
            v.len().checked_sub(1)?
        };
        v.get(i).cloned()
    }
}
