//! Relay buffers — kernel pipes for splice, user-space buffers for copy — and the per-core pools
//! that recycle them.
//!
//! Owns: creating pipes at the configured capacity and reusing empty ones so a new connection does
//! not pay pipe2 + fcntl; lending copy buffers only while bytes are in flight, so an idle
//! connection holds no relay memory at all. Must not: be shared between cores (plain `RefCell`s,
//! one pool per core) or take back a pipe that may still hold bytes of another connection.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;

pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    pub fn new(size: usize) -> io::Result<Pipe> {
        let (read, write) = sys::pipe()?;
        // EPERM (over the per-user pipe budget) keeps the default capacity: slower, still correct.
        let capacity = match sys::set_pipe_size(&write, size) {
            Ok(n) => n,
            Err(_) => sys::pipe_size(&write)?,
        };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Pool of empty pipes for one core.
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
    max_idle: usize,
    pipe_size: usize,
    created: Cell<u64>,
    reused: Cell<u64>,
}

impl PipePool {
    /// `max_idle` bounds the pipes kept for reuse; each holds no memory while empty, but it does
    /// hold two file descriptors.
    pub fn new(pipe_size: usize, max_idle: usize) -> PipePool {
        PipePool {
            free: RefCell::new(Vec::with_capacity(max_idle)),
            max_idle,
            pipe_size,
            created: Cell::new(0),
            reused: Cell::new(0),
        }
    }

    pub fn take(&self) -> io::Result<Pipe> {
        if let Some(p) = self.free.borrow_mut().pop() {
            self.reused.set(self.reused.get() + 1);
            return Ok(p);
        }
        let p = Pipe::new(self.pipe_size)?;
        self.created.set(self.created.get() + 1);
        Ok(p)
    }

    /// Returns a pipe for reuse. Only call with an empty pipe; a pipe with bytes left in it must
    /// simply be dropped.
    pub fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.max_idle {
            free.push(pipe);
        }
    }

    /// (pipes created, pipes reused) since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.created.get(), self.reused.get())
    }
}

/// First buffer a copy pump borrows. Most connections move small messages; only a read that fills
/// this buffer (a bulk flow) earns a large one.
pub const SMALL_BUFFER: usize = 16 * 1024;

/// Copy buffers for one core, in two sizes. A pump borrows one when its source has data and returns
/// it as soon as everything read has been written, so memory follows traffic, not connection count,
/// and large buffers go only to flows that fill small ones.
pub struct BufferPool {
    small: RefCell<Vec<Box<[u8]>>>,
    large: RefCell<Vec<Box<[u8]>>>,
    max_idle: usize,
    large_size: usize,
}

impl BufferPool {
    /// `large_size` below [`SMALL_BUFFER`] is raised to it.
    pub fn new(large_size: usize, max_idle: usize) -> BufferPool {
        BufferPool {
            small: RefCell::new(Vec::with_capacity(max_idle)),
            large: RefCell::new(Vec::with_capacity(max_idle)),
            max_idle,
            large_size: large_size.max(SMALL_BUFFER),
        }
    }

    pub fn take_small(&self) -> Box<[u8]> {
        Self::take(&self.small, SMALL_BUFFER)
    }

    pub fn take_large(&self) -> Box<[u8]> {
        Self::take(&self.large, self.large_size)
    }

    pub fn large_size(&self) -> usize {
        self.large_size
    }

    fn take(list: &RefCell<Vec<Box<[u8]>>>, size: usize) -> Box<[u8]> {
        list.borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0u8; size].into_boxed_slice())
    }

    /// Keeps the buffer for reuse if its size is one this pool hands out and there is room.
    pub fn give_back(&self, buffer: Box<[u8]>) {
        let list = if buffer.len() == self.large_size {
            &self.large
        } else if buffer.len() == SMALL_BUFFER {
            &self.small
        } else {
            return;
        };
        let mut list = list.borrow_mut();
        if list.len() < self.max_idle {
            list.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_are_reused_only_when_given_back() {
        let pool = PipePool::new(64 * 1024, 1);
        let a = pool.take().unwrap();
        assert!(a.capacity() >= 4096);
        let b = pool.take().unwrap();
        pool.give_back(a);
        pool.give_back(b); // over max_idle: closed, not kept
        let _c = pool.take().unwrap();
        assert_eq!(pool.counts(), (2, 1));
    }

    #[test]
    fn buffers_are_recycled_by_size_up_to_the_idle_bound() {
        let pool = BufferPool::new(256 * 1024, 1);
        let small = pool.take_small();
        let large = pool.take_large();
        assert_eq!((small.len(), large.len()), (SMALL_BUFFER, 256 * 1024));
        let (sp, lp) = (small.as_ptr(), large.as_ptr());
        pool.give_back(small);
        pool.give_back(large);
        pool.give_back(vec![0u8; 3].into_boxed_slice()); // foreign size: dropped
        let (small, large) = (pool.take_small(), pool.take_large());
        assert_eq!((small.as_ptr(), large.as_ptr()), (sp, lp));
        assert_eq!(
            pool.take_large().len(),
            256 * 1024,
            "an empty pool allocates"
        );
    }

    #[test]
    fn buffer_pool_keeps_at_most_max_idle() {
        let pool = BufferPool::new(4 * SMALL_BUFFER, 2);
        let bufs: Vec<_> = (0..3).map(|_| pool.take_small()).collect();
        for b in bufs {
            pool.give_back(b);
        }
        assert_eq!(pool.small.borrow().len(), 2);
    }
}
