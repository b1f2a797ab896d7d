//! Test-only helpers shared by the unit tests of several modules.

/// Counts the calling thread's live heap bytes, to measure what a structure costs.
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static CALLS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn add(n: isize) {
        let _ = LIVE.try_with(|c| c.set(c.get() + n));
    }

    /// One more allocation or reallocation on this thread.
    fn call() {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }

    #[allow(unsafe_code)]
    // SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
    // const-initialised thread-local without destructor, so counting never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            call();
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            call();
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Live heap bytes allocated by this thread.
    pub fn live() -> isize {
        LIVE.with(Cell::get)
    }

    /// Allocations and reallocations this thread made so far.
    pub fn calls() -> u64 {
        CALLS.with(Cell::get)
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;
