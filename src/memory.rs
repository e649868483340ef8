//! Handing freed heap memory back to the system.

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
