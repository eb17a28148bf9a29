//! Locks that a panic cannot poison for everyone after it. Shared state in rift is
//! updated in one step under its lock (no half-made changes are left behind by an
//! early return), so a guard recovered from a poisoned lock sees consistent data; one
//! failed request must never turn every later request into an error.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_under_the_lock_does_not_poison_it_for_later_callers() {
        let shared = std::sync::Arc::new(Mutex::new(1));
        let inner = shared.clone();
        let crashed = std::thread::spawn(move || {
            let _guard = lock(&inner);
            panic!("a request failed while holding the lock");
        })
        .join();
        assert!(crashed.is_err());
        assert!(shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }
}
