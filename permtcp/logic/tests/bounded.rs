// SPDX-License-Identifier: GPL-2.0

//! Host tests of the fixed-capacity vector (`bounded.rs`) that declarations are made of.

use permtcp_logic::bounded::Bounded;

#[test]
fn push_fills_to_capacity_then_gives_the_value_back() {
    let mut b: Bounded<u32, 3> = Bounded::default();
    assert_eq!(Bounded::<u32, 3>::CAPACITY, 3);
    assert!(b.is_empty());
    for v in [7, 8, 9] {
        assert_eq!(b.push(v), Ok(()));
    }
    assert_eq!(b.len(), 3);
    assert_eq!(b.push(10), Err(10), "full: the value comes back");
    assert_eq!(b.as_slice(), &[7, 8, 9]);
    assert_eq!(b.len(), 3, "a refused push changes nothing");
}

#[test]
fn slices_and_iteration_see_only_the_stored_values() {
    let mut b: Bounded<u16, 8> = Bounded::default();
    b.push(30).unwrap();
    b.push(10).unwrap();
    b.push(20).unwrap();
    assert_eq!(b.iter().copied().collect::<Vec<_>>(), [30, 10, 20]);
    assert_eq!((&b).into_iter().count(), 3);
    b.as_mut_slice().sort_unstable();
    assert_eq!(b.as_slice(), &[10, 20, 30]);
    assert_eq!(format!("{b:?}"), "[10, 20, 30]");
}

#[test]
fn copies_are_independent_and_compare_by_value() {
    let mut a: Bounded<u8, 4> = Bounded::default();
    a.push(1).unwrap();
    let mut b = a;
    assert_eq!(a, b);
    b.push(2).unwrap();
    assert_ne!(a, b, "the copy is independent");
    a.push(2).unwrap();
    assert_eq!(a, b);
}

#[test]
fn zero_capacity_holds_nothing() {
    let mut b: Bounded<u8, 0> = Bounded::default();
    assert_eq!(b.push(1), Err(1));
    assert!(b.is_empty());
    assert_eq!(b.as_slice(), &[] as &[u8]);
}
