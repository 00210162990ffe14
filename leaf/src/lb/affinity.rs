//! Which child a function's calls go to: every function has an affinity to
//! one child, chosen by rendezvous (highest-random-weight) hashing of the
//! function id over the children's addresses.
//!
//! Why affinity rather than "wherever there is warm capacity": every leaf
//! that gets a call for a function it has no instance of starts one, so
//! spreading one function's calls over N leaves starts up to N instances
//! where one was enough (the first full-size scale run started 37 726
//! instances for 10 000 functions over 4 leaves). With affinity a function's
//! calls go to its first-ranked child while that child is in rotation, and
//! to the next-ranked one only when it is out of rotation, was excluded after
//! a failed attempt, or refused the call at its bound (RESOURCE_EXHAUSTED).
//!
//! Rendezvous hashing, because removing a child moves only the functions
//! ranked first on it (each to its own next-ranked child, so they spread
//! over the others instead of piling onto one), and every load-balancer node
//! over the same children ranks them the same way: the score depends only on
//! the function id and the child's address, never on the order of the
//! `--child` flags or on the process.

use hyperfake_core::FunctionId;

/// The rank of the child at `address` for `function`: the highest score is
/// the function's first choice.
pub(super) fn score(function: &FunctionId, address: &str) -> u64 {
    mix(fnv1a(function.as_str().as_bytes()) ^ mix(fnv1a(address.as_bytes())))
}

/// FNV-1a: the same on every node and every run (std's `DefaultHasher` is
/// not promised to be).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// splitmix64's finaliser. FNV-1a alone barely changes its high bits when
/// only the last bytes differ, and children's addresses often differ only in
/// the port's last digits, so without mixing one child would win most
/// functions.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_choice(function: &FunctionId, addresses: &[String]) -> usize {
        (0..addresses.len()).max_by_key(|i| score(function, &addresses[*i])).unwrap()
    }

    #[test]
    fn functions_spread_evenly_over_children_whose_addresses_differ_in_the_last_digit() {
        for n in [2usize, 4, 7] {
            let addresses: Vec<_> = (0..n).map(|i| format!("127.0.0.1:4100{i}")).collect();
            let mut counts = vec![0usize; n];
            for f in 0..1000 {
                counts[first_choice(&FunctionId::new(uuid::Uuid::new_v4().to_string()), &addresses)] += 1;
                counts[first_choice(&FunctionId::new(format!("fn-{f}")), &addresses)] += 1;
            }
            // 2 000 functions: each child expects 2000/n; a binomial standard
            // deviation is at most 22, so 25 % off is far beyond chance.
            let expected = 2000 / n;
            for (child, count) in counts.iter().enumerate() {
                assert!(
                    count.abs_diff(expected) <= expected / 4,
                    "{n} children: child {child} is first for {count} of 2000 functions (expected about {expected}): {counts:?}"
                );
            }
        }
    }

    #[test]
    fn removing_a_child_moves_only_the_functions_ranked_first_on_it() {
        let addresses: Vec<_> = (0..4).map(|i| format!("10.0.0.{i}:50050")).collect();
        let fewer = addresses[..3].to_vec();
        for f in 0..500 {
            let function = FunctionId::new(format!("f{f}"));
            let before = first_choice(&function, &addresses);
            let after = first_choice(&function, &fewer);
            if before != 3 {
                assert_eq!(before, after, "{function} moved although its child stayed");
            }
        }
    }
}
