// SPDX-License-Identifier: GPL-2.0

//! A fixed-capacity vector of `Copy` values, so that declarations need no allocator.

/// Up to `N` values of `T`, stored inline.
///
/// # Invariants
///
/// `len <= N`; `items[..len]` are the values, `items[len..]` hold `T::default()`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bounded<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> Bounded<T, N> {
    /// Capacity.
    pub const CAPACITY: usize = N;

    /// Appends `v`; gives it back when full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.len == N {
            return Err(v);
        }
        self.items[self.len] = v;
        self.len += 1;
        Ok(())
    }

    /// The stored values.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// The stored values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every value (the invariant's defaults are restored).
    pub fn clear(&mut self) {
        self.items[..self.len].fill(T::default());
        self.len = 0;
    }

    /// Iterates over the values.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }
}

impl<T: Copy + Default + core::fmt::Debug, const N: usize> core::fmt::Debug for Bounded<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<'a, T: Copy + Default, const N: usize> IntoIterator for &'a Bounded<T, N> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
