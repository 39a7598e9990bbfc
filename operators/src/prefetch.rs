//! Hints to the processor to fetch a cache line before it is used.

/// Starts fetching the cache line holding `at`, to be written. Only a hint: it never
/// faults, whatever `at` is, and does nothing where the processor has no such hint.
#[inline(always)]
pub fn for_writing<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, even at an
    // address that is not mapped.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        _mm_prefetch::<_MM_HINT_ET0>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
