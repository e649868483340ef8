//! The OS scheduling priority of the calling thread: the background training thread lowers
//! its own, so that serving, on every core, keeps the CPU when both want it.

/// Raises the calling thread's nice value by `steps` (0–19; higher runs later), and with it
/// that of the threads it starts afterwards (libtorch's worker threads among them). Other
/// threads of the process keep theirs: on Linux the nice value is per thread. Returns the new
/// nice value, or the error the kernel gave. Elsewhere than Linux it does nothing and
/// returns 0.
pub fn lower_current_thread(steps: i32) -> std::io::Result<i32> {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn nice(inc: std::os::raw::c_int) -> std::os::raw::c_int;
        }
        // SAFETY: nice(2) changes only the calling thread's scheduling priority on Linux; it
        // takes no pointers. -1 is also a valid result, so errno tells failure apart.
        unsafe {
            *errno_location() = 0;
            let now = nice(steps.clamp(0, 19));
            if now == -1 && *errno_location() != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(now)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = steps;
        Ok(0)
    }
}

#[cfg(target_os = "linux")]
unsafe fn errno_location() -> *mut std::os::raw::c_int {
    extern "C" {
        fn __errno_location() -> *mut std::os::raw::c_int;
    }
    __errno_location()
}

/// The nice value of the calling thread as the kernel reports it (`/proc/thread-self/stat`).
#[cfg(target_os = "linux")]
pub fn current_thread_nice() -> std::io::Result<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    after
        .split_whitespace()
        .nth(16) // field 19 of stat(5), counted from field 3
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other("no nice value in /proc/thread-self/stat"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_and_the_threads_it_starts_run_at_the_lower_priority() {
        let before = current_thread_nice().unwrap();
        let (lowered, child) = std::thread::spawn(|| {
            let now = lower_current_thread(7).unwrap();
            assert_eq!(current_thread_nice().unwrap(), now);
            let child = std::thread::spawn(|| current_thread_nice().unwrap())
                .join()
                .unwrap();
            (now, child)
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 7).min(19));
        assert_eq!(child, lowered, "a thread started afterwards inherits it");
        assert_eq!(
            current_thread_nice().unwrap(),
            before,
            "this thread keeps its own"
        );
    }
}
