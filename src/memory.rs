//! Handing freed heap memory back to the system, and keeping the allocator from holding
//! much more than it uses.

/// Returns the free pages of every glibc arena to the system. A training run allocates
/// hundreds of megabytes (the training graph, optimizer state, two models for the gate) and a
/// model swap frees the old version's weights, but glibc keeps freed pages in its arenas:
/// without this, a serving process stays at its peak size after every run (bench/trust.sh's
/// soak measured +173 % RSS). Elsewhere than Linux with glibc it does nothing.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it
        // takes no pointers and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Caps glibc's malloc arenas at the number of CPUs, unless `MALLOC_ARENA_MAX` is set (glibc
/// reads it itself). glibc gives each new thread that meets contention an arena of its own,
/// up to 8 per CPU; tokio's workers and blocking threads, the inference thread and a
/// training thread each keep freed memory in theirs, so a long-running server grows by
/// fragments no other thread can reuse. Call it first thing, before threads start.
/// Elsewhere than Linux with glibc it does nothing.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        /// glibc's `M_ARENA_MAX` (malloc.h).
        const M_ARENA_MAX: std::os::raw::c_int = -8;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        // SAFETY: mallopt only sets a tuning parameter of the allocator; M_ARENA_MAX limits
        // arenas created from now on and is safe to change at any time.
        unsafe {
            mallopt(M_ARENA_MAX, cpus.clamp(2, 64) as std::os::raw::c_int);
        }
    }
}
