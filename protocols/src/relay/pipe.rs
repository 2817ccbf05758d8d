//! Kernel pipes for splice, and the per-core pool that recycles them.
//!
//! Owns: creating pipes at the configured capacity and reusing empty ones so a new connection does
//! not pay pipe2 + fcntl. Must not: be shared between cores (it is a plain `RefCell`, one per core)
//! or take back a pipe that may still hold bytes of another connection.

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
