//! [`BufferPool`]: reusable `Vec`s handed out through an RAII guard.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A thread-safe pool of `Vec<T>`s.
///
/// [`get`](Self::get) lends a cleared buffer (length 0, capacity kept) behind a [`Pooled`]
/// guard; dropping the guard clears the buffer and returns it, unless the pool already keeps
/// `max_idle` buffers, in which case it is freed (and counted as dropped). Cloning the pool
/// clones a handle to the same buffers. Counters can be read at any time with
/// [`stats`](Self::stats).
///
/// Steady state means no allocation: once the pool holds buffers as large as the work needs,
/// [`get_with_capacity`](Self::get_with_capacity) is a hit every time.
///
/// ```
/// use inferkit_preprocess::BufferPool;
///
/// let pool = BufferPool::<u8>::new(4);
/// {
///     let mut buf = pool.get_with_capacity(1024);
///     buf.extend_from_slice(b"pixels");
/// } // returned, cleared, capacity kept
/// let buf = pool.get_with_capacity(1024);
/// assert!(buf.is_empty() && buf.capacity() >= 1024);
/// let s = pool.stats();
/// assert_eq!((s.hits, s.allocations, s.idle), (1, 1, 0));
/// ```
pub struct BufferPool<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    idle: Mutex<Vec<Vec<T>>>,
    max_idle: usize,
    hits: AtomicU64,
    allocations: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served by an idle buffer large enough.
    pub hits: u64,
    /// Requests that allocated: no idle buffer, or one too small that had to grow.
    pub allocations: u64,
    /// Buffers freed on return because `max_idle` were already idle.
    pub dropped: u64,
    /// Buffers idle in the pool now.
    pub idle: usize,
}

impl<T> BufferPool<T> {
    /// A pool that keeps at most `max_idle` idle buffers.
    pub fn new(max_idle: usize) -> Self {
        BufferPool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::with_capacity(max_idle)),
                max_idle,
                hits: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A cleared buffer: the most recently returned idle one, or a new empty `Vec` (counted as
    /// an allocation: it will allocate when first filled).
    pub fn get(&self) -> Pooled<T> {
        let buf = self.lock().pop();
        match buf {
            Some(b) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                self.wrap(b)
            }
            None => {
                self.inner.allocations.fetch_add(1, Ordering::Relaxed);
                self.wrap(Vec::new())
            }
        }
    }

    /// A cleared buffer with room for at least `capacity` elements: the smallest idle one that
    /// fits, else the largest idle one grown, else a new one.
    pub fn get_with_capacity(&self, capacity: usize) -> Pooled<T> {
        let mut buf = {
            let mut idle = self.lock();
            let fit = idle
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= capacity)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            let largest = || {
                idle.iter()
                    .enumerate()
                    .max_by_key(|(_, b)| b.capacity())
                    .map(|(i, _)| i)
            };
            match fit.or_else(largest) {
                Some(i) => idle.swap_remove(i),
                None => Vec::new(),
            }
        };
        if buf.capacity() >= capacity {
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.allocations.fetch_add(1, Ordering::Relaxed);
            buf.reserve_exact(capacity);
        }
        self.wrap(buf)
    }

    /// The counters, now.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            allocations: self.inner.allocations.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            idle: self.lock().len(),
        }
    }

    /// The most buffers kept idle.
    pub fn max_idle(&self) -> usize {
        self.inner.max_idle
    }

    fn wrap(&self, buf: Vec<T>) -> Pooled<T> {
        Pooled {
            buf,
            pool: Arc::clone(&self.inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        // A panic while holding the lock cannot leave the list inconsistent (push/pop only).
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Clone for BufferPool<T> {
    fn clone(&self) -> Self {
        BufferPool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for BufferPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("max_idle", &self.inner.max_idle)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A buffer lent by a [`BufferPool`]; derefs to `Vec<T>` and goes back to the pool, cleared,
/// when dropped.
pub struct Pooled<T> {
    buf: Vec<T>,
    pool: Arc<Inner<T>>,
}

impl<T> Pooled<T> {
    /// Keeps the buffer for good: it will not return to the pool.
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.buf)
    }
}

impl<T> Deref for Pooled<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.buf
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.buf
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.pool.max_idle {
            idle.push(buf);
        } else {
            drop(idle);
            self.pool.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_cleared_with_capacity_and_bounds_idle() {
        let pool = BufferPool::<u32>::new(2);
        let bufs: Vec<_> = (0..3).map(|_| pool.get_with_capacity(100)).collect();
        assert_eq!(pool.stats().allocations, 3);
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.idle, s.dropped), (2, 1));
        let mut b = pool.get_with_capacity(50);
        assert!(b.is_empty() && b.capacity() >= 100);
        b.push(7);
        drop(b);
        assert!(pool.get().is_empty());
        assert_eq!(pool.stats().hits, 2);
    }

    #[test]
    fn too_small_idle_buffer_grows_and_counts_as_allocation() {
        let pool = BufferPool::<u8>::new(1);
        drop(pool.get_with_capacity(10));
        let b = pool.get_with_capacity(1000);
        assert!(b.capacity() >= 1000);
        assert_eq!(pool.stats().allocations, 2);
    }

    #[test]
    fn into_vec_detaches() {
        let pool = BufferPool::<u8>::new(1);
        let mut b = pool.get_with_capacity(8);
        b.push(1);
        assert_eq!(b.into_vec(), vec![1]);
        assert_eq!(pool.stats().idle, 0);
    }

    #[test]
    fn shared_across_threads() {
        let pool = BufferPool::<u8>::new(8);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let pool = pool.clone();
                s.spawn(move || {
                    for _ in 0..100 {
                        let mut b = pool.get_with_capacity(64);
                        b.resize(64, 1);
                    }
                });
            }
        });
        let st = pool.stats();
        assert_eq!(st.hits + st.allocations, 400);
        assert!(st.allocations <= 8, "{st:?}");
    }
}
