//! Keeps a capture file cut short while it is mapped from crashing the process: a read of
//! a mapped page past the file's new end raises SIGBUS, which here maps a page of zeros in
//! its place and marks the mapping, so the reader can say where the file broke and stop.
//!
//! This happens for real: `tcpdump -C ... -W N` reuses its oldest file by truncating it,
//! possibly while staleconn is reading that very file.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Mapped regions watched at once. A file has three windows mapped (one parsed, one
/// waiting, one being mapped), and, read on two threads, a few more whose segments are on
/// their way to the flow table (about a dozen in all); a merge of rotated files has three
/// for each file. A file that finds none free as it is opened is read by libpcap instead.
const REGIONS: usize = 1024;

/// One watched address range. `seq` is odd while the range is being written, so the
/// handler, which may run at any moment on any thread, never matches a torn range.
struct Region {
    claimed: AtomicBool,
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    hit: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array, copied once each
const FREE: Region = Region {
    claimed: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};
static WATCHED: [Region; REGIONS] = [FREE; REGIONS];
static INSTALL: Once = Once::new();
/// The system's page size, once asked (0 until then): read by the handler, where sysconf
/// may not be called.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The SIGBUS action before ours, for faults that are not ours; written once, before any
/// region is watched.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// A watched address range; unwatched when dropped, which must happen before it is
/// unmapped.
pub struct Watch {
    index: usize,
}

impl Watch {
    /// Watches `start..start + len`; `None` when too many ranges are watched already.
    pub fn new(start: usize, len: usize) -> Option<Watch> {
        INSTALL.call_once(install);
        let index = WATCHED.iter().position(|region| {
            region
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        let region = &WATCHED[index];
        region.seq.fetch_add(1, Ordering::AcqRel);
        region.start.store(start, Ordering::Release);
        region.end.store(start + len, Ordering::Release);
        region.hit.store(false, Ordering::Release);
        region.seq.fetch_add(1, Ordering::AcqRel);
        Some(Watch { index })
    }

    /// Whether a read of this range found the file cut short (and read zeros instead).
    #[inline]
    pub fn hit(&self) -> bool {
        WATCHED[self.index].hit.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let region = &WATCHED[self.index];
        region.seq.fetch_add(1, Ordering::AcqRel);
        region.end.store(0, Ordering::Release);
        region.start.store(0, Ordering::Release);
        region.seq.fetch_add(1, Ordering::AcqRel);
        region.claimed.store(false, Ordering::Release);
    }
}

/// The system's page size (4 KB on x86_64; up to 64 KB on arm64).
pub fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf only reads a system constant.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
                .ok()
                .filter(|&page| page > 0)
                .unwrap_or(4096);
            PAGE_SIZE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

fn install() {
    // Known before the handler can run.
    page_size();
    // SAFETY: sigaction with a zeroed, then filled, action; the handler only does what a
    // signal handler may (atomics, mmap, sigaction).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
            let _ = PREVIOUS.set(previous);
        }
    }
}

/// The watched region holding `address`, if any.
fn watched(address: usize) -> Option<&'static Region> {
    WATCHED.iter().find(|region| {
        let before = region.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            return false;
        }
        let (start, end) = (
            region.start.load(Ordering::Acquire),
            region.end.load(Ordering::Acquire),
        );
        region.seq.load(Ordering::Acquire) == before && start <= address && address < end
    })
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    if let Some(region) = watched(address) {
        let page = address & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
        // SAFETY: replaces one page of a read-only file mapping we own with zeros; mmap is
        // a plain system call on Linux, safe to make in a handler. The faulting read then
        // runs again and reads zeros.
        let zeros = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                PAGE_SIZE.load(Ordering::Relaxed),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            region.hit.store(true, Ordering::Relaxed);
            return;
        }
    }
    // Not ours: what would have happened without us.
    // SAFETY: calls the handler that was installed before ours, with its own signature,
    // or restores the default action so that the fault, on its return, ends the process.
    unsafe {
        match PREVIOUS.get() {
            Some(previous)
                if previous.sa_sigaction != libc::SIG_DFL
                    && previous.sa_sigaction != libc::SIG_IGN =>
            {
                if previous.sa_flags & libc::SA_SIGINFO != 0 {
                    let handler: extern "C" fn(
                        libc::c_int,
                        *mut libc::siginfo_t,
                        *mut libc::c_void,
                    ) = std::mem::transmute(previous.sa_sigaction);
                    handler(signal, info, context);
                } else {
                    let handler: extern "C" fn(libc::c_int) =
                        std::mem::transmute(previous.sa_sigaction);
                    handler(signal);
                }
            }
            _ => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            }
        }
    }
}
