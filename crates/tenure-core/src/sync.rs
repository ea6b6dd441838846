//! Locks that survive a panic elsewhere.
//!
//! tenure's mutexes guard plain state (maps, counters, slots) whose every update is complete
//! before the guard is dropped, so a panic in another thread leaves it consistent: the poison
//! flag carries no information and is ignored here, once, instead of at every call site.
//!
//! ```
//! use std::sync::Mutex;
//!
//! let m = Mutex::new(1);
//! *tenure_core::sync::lock(&m) += 1;
//! assert_eq!(*tenure_core::sync::lock(&m), 2);
//! ```

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, whether or not another thread panicked while holding it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks `lock`, whether or not another thread panicked while holding it.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks `lock`, whether or not another thread panicked while holding it.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, RwLock};

    use super::*;

    #[test]
    fn a_poisoned_lock_still_locks() {
        let m = Arc::new(Mutex::new(7));
        let rw = Arc::new(RwLock::new(8));
        let (m2, rw2) = (m.clone(), rw.clone());
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = rw2.write().unwrap();
            panic!("poisoning on purpose");
        })
        .join();
        assert!(m.is_poisoned() && rw.is_poisoned());
        assert_eq!(*lock(&m), 7);
        assert_eq!(*read(&rw), 8);
        *write(&rw) = 9;
        assert_eq!(*read(&rw), 9);
    }
}
