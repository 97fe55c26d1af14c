//! The CPU's f32 fused multiply-add peak, measured: the roofline that the predict and training
//! throughputs of `bench/run.py` are read against.
//!
//! ```text
//! cargo run --release --example fma_peak            # 1 thread and 2 threads
//! cargo run --release --example fma_peak -- 1 2 4   # chosen thread counts
//! ```
//!
//! Each thread runs 12 independent chains of `acc = acc·b + c` on full-width registers
//! (AVX-512 where the CPU has it, else AVX2 + FMA), enough to cover the latency of two FMA
//! units; a chain's multiply and add count as 2 FLOP per lane. Prints one JSON line per thread
//! count with GFLOP/s: the rate no matrix product on this machine can beat.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;

/// The f32 FMA peak of this CPU, one JSON line per thread count.
#[derive(Parser, Debug)]
struct Args {
    /// Thread counts to measure (default: 1 and 2).
    #[arg(value_parser = clap::value_parser!(u64).range(1..256))]
    threads: Vec<u64>,
}

/// Steps per chain and thread (12 chains): about 0.2 s on a 3.8 GHz AVX-512 core.
const STEPS: usize = 200_000_000;
const CHAINS: usize = 12;

/// FLOP done by one call of `chains`.
fn flop(lanes: usize) -> f64 {
    (STEPS * CHAINS * lanes * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CHAINS, STEPS};

    /// 12 chains of 16-lane FMAs; returns a value that depends on all of them.
    #[target_feature(enable = "avx512f")]
    pub fn chains_avx512(seed: f32) -> f32 {
        let (b, c) = (_mm512_set1_ps(0.999_999_9), _mm512_set1_ps(1e-7));
        let mut acc: [__m512; CHAINS] = std::array::from_fn(|i| _mm512_set1_ps(seed + i as f32));
        for _ in 0..STEPS {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// 12 chains of 8-lane FMAs; returns a value that depends on all of them.
    #[target_feature(enable = "avx2,fma")]
    pub fn chains_avx2(seed: f32) -> f32 {
        let (b, c) = (_mm256_set1_ps(0.999_999_9), _mm256_set1_ps(1e-7));
        let mut acc: [__m256; CHAINS] = std::array::from_fn(|i| _mm256_set1_ps(seed + i as f32));
        for _ in 0..STEPS {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        let mut out = [0.0f32; 8];
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }
}

/// One thread's chains: (lanes per register, result), or `None` without FMA hardware.
fn chains(seed: f32) -> Option<(usize, f32)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return Some((16, unsafe { x86::chains_avx512(seed) }));
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return Some((8, unsafe { x86::chains_avx2(seed) }));
        }
    }
    let _ = seed;
    None
}

fn main() {
    let args = Args::parse();
    let threads = if args.threads.is_empty() {
        vec![1, 2]
    } else {
        args.threads.iter().map(|&t| t as usize).collect()
    };
    for &t in &threads {
        let start = Instant::now();
        let results: Vec<Option<(usize, f32)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..t)
                .map(|i| s.spawn(move || chains(black_box(1.0 + i as f32))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        let Some(Some((lanes, _))) = results.first().copied() else {
            println!(
                "{{\"threads\":{t},\"gflops\":null,\"why\":\"no AVX2/AVX-512 FMA on this CPU\"}}"
            );
            continue;
        };
        black_box(&results);
        let gflops = flop(lanes) * t as f64 / seconds / 1e9;
        println!(
            "{{\"threads\":{t},\"lanes\":{lanes},\"gflops\":{gflops:.1},\"seconds\":{seconds:.3}}}"
        );
    }
}
