//! How a station's short rings grow: most stations hold a few elements in each, and
//! doubling left most of a million stations with room for twice that.

use std::collections::VecDeque;

/// Makes room for one more element in a full `ring` shorter than `below` by growing it
/// by one, not by doubling; longer ones grow as `VecDeque` grows them.
pub fn room_for_one<T>(ring: &mut VecDeque<T>, below: usize) {
    if ring.len() == ring.capacity() && ring.len() < below {
        ring.reserve_exact(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_ring_grows_by_one_and_a_long_one_by_doubling() {
        let mut ring: VecDeque<u64> = VecDeque::new();
        for n in 0..4 {
            room_for_one(&mut ring, 4);
            ring.push_back(n);
            assert_eq!(ring.capacity(), ring.len());
        }
        room_for_one(&mut ring, 4);
        ring.push_back(4);
        assert!(ring.capacity() >= 8);
    }
}
