//! RFC 6962 Merkle tree hashing, proofs and their verification (RFC 9162 §2.1.3-2.1.4).

use crate::error::{Error, Result};
use crate::limits::PROOF_HASHES_MAX;
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// SHA-256(0x00 || leaf bytes).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Largest power of two strictly less than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The running right edge of the tree: one hash per perfect subtree, so the
/// writer computes any root in O(log n) memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect-subtree roots, largest (leftmost) first.
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Frontier::default()
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self
                .stack
                .pop()
                .expect("frontier stack matches the size bits");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.stack.push(hash);
        self.size += 1;
        debug_assert_eq!(self.stack.len() as u32, self.size.count_ones());
    }
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        let mut hash = *last;
        for left in iter {
            hash = node_hash(left, &hash);
        }
        hash
    }
}

/// MTH(D\[n\]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// RFC 6962 PATH(index, D\[n\]) over the first `leaves.len()` leaf hashes.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>> {
    if index >= leaves.len() as u64 {
        return Err(Error::Proof {
            reason: format!("index {index} is not below the tree size {}", leaves.len()),
        });
    }
    let mut proof = Vec::new();
    path(index as usize, leaves, &mut proof);
    proof.reverse();
    Ok(proof)
}

// Pushes the path top-down; the caller reverses it to leaf-up order.
fn path(index: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n as u64) as usize;
    if index < k {
        out.push(root(&leaves[k..]));
        path(index, &leaves[..k], out);
    } else {
        out.push(root(&leaves[..k]));
        path(index - k, &leaves[k..], out);
    }
}

/// RFC 6962 PROOF(old_size, D\[n\]) for n = `leaves.len()`.
pub fn consistency_proof(old_size: u64, leaves: &[Hash]) -> Result<Vec<Hash>> {
    let n = leaves.len() as u64;
    if old_size > n {
        return Err(Error::Proof {
            reason: format!("old size {old_size} is above the tree size {n}"),
        });
    }
    if old_size == 0 || old_size == n {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    subproof(old_size as usize, leaves, true, &mut proof);
    proof.reverse();
    Ok(proof)
}

// Pushes top-down; the caller reverses.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        out.push(root(&leaves[k..]));
        subproof(m, &leaves[..k], complete, out);
    } else {
        out.push(root(&leaves[..k]));
        subproof(m - k, &leaves[k..], false, out);
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` with hash `leaf` in the tree (`size`, `root`)?
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected_root: &Hash,
) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::Proof {
            reason: reason.to_string(),
        })
    };
    if index >= size {
        return fail("the index is not below the tree size");
    }
    if proof.len() > PROOF_HASHES_MAX {
        return fail("too many hashes");
    }
    let mut f = index;
    let mut s = size - 1;
    let mut hash = *leaf;
    for sibling in proof {
        if s == 0 {
            return fail("the proof is longer than the tree is deep");
        }
        if f & 1 == 1 || f == s {
            hash = node_hash(sibling, &hash);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return fail("the proof is shorter than the tree is deep");
    }
    if &hash != expected_root {
        return fail("the computed root does not match the checkpoint's root");
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: is the tree (`old_size`, `old_root`) a prefix of (`new_size`, `new_root`)?
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::Proof {
            reason: reason.to_string(),
        })
    };
    if old_size > new_size {
        return fail("the old tree is larger than the new tree (rollback)");
    }
    if proof.len() > PROOF_HASHES_MAX {
        return fail("too many hashes");
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return fail("a proof between equal sizes must be empty");
        }
        if old_root != new_root {
            return fail("same tree size but different roots (the log forked)");
        }
        return Ok(());
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return fail("a proof from the empty tree must be empty");
        }
        if old_root != &empty_root() {
            return fail("the empty tree's root is wrong");
        }
        return Ok(());
    }
    if proof.is_empty() {
        return fail("the proof is empty");
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let mut f = old_size - 1;
    let mut s = new_size - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut old_hash = path[0];
    let mut new_hash = path[0];
    for c in &path[1..] {
        if s == 0 {
            return fail("the proof is longer than needed");
        }
        if f & 1 == 1 || f == s {
            old_hash = node_hash(c, &old_hash);
            new_hash = node_hash(c, &new_hash);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            new_hash = node_hash(&new_hash, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return fail("the proof is shorter than needed");
    }
    if &old_hash != old_root {
        return fail("the proof does not lead to the old root (the log was rewritten)");
    }
    if &new_hash != new_root {
        return fail("the proof does not lead to the new root");
    }
    Ok(())
}
