//! Run-time CPU dispatch for element-wise loops.
//!
//! The crate is built for the baseline x86-64 instruction set, so a plain loop is compiled
//! for SSE2. `multiversion!` compiles a loop's body again for AVX2 + FMA and for AVX-512
//! and picks the widest the CPU has when called, as `gemm` does for its own kernels.

/// Defines a function whose body is compiled three times — for AVX-512, for AVX2 + FMA and
/// for the baseline — and picks the widest the CPU has at run time (`gemm` does the same for
/// its kernels). Only element-wise loops use it; Rust never fuses `a * b + c` into an FMA on
/// its own, so every version rounds exactly alike.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v4($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

pub(crate) use multiversion;

multiversion! {
    /// Whether every value is finite (no NaN, no ±∞), without an early exit so that it
    /// vectorises.
    fn all_finite_in(values: &[f32], out: &mut bool) {
        *out = values.iter().fold(true, |ok, v| ok & v.is_finite());
    }
}

/// Whether every value is finite (no NaN, no ±∞), on this thread.
pub fn all_finite(values: &[f32]) -> bool {
    let mut ok = true;
    all_finite_in(values, &mut ok);
    ok
}

/// Position of the first NaN or ±∞ in `values`, scanning blocks in parallel.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    let finite = all_finite;
    let block = if values.len() > 4 * BLOCK {
        values.par_chunks(BLOCK).position_first(|b| !finite(b))?
    } else {
        values.chunks(BLOCK).position(|b| !finite(b))?
    };
    let start = block * BLOCK;
    values[start..]
        .iter()
        .position(|v| !v.is_finite())
        .map(|p| start + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_value() {
        let mut v = vec![1.0f32; 200_000];
        assert_eq!(first_non_finite(&v), None);
        v[150_001] = f32::INFINITY;
        v[170_000] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(150_001));
        v[3] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(3));
        assert_eq!(first_non_finite(&[]), None);
        assert_eq!(first_non_finite(&[0.0, f32::NEG_INFINITY]), Some(1));
    }
}
