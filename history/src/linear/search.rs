//! The search for one key: Wing & Gong's backtracking over a linked list of call and
//! return events, with Lowe's memoization of (linearized set, state), as in porcupine's
//! `checkSingle`.
//!
//! The list holds every operation's call and return in time order. Walking from the
//! head, a call whose operation can take effect in the current state is linearized:
//! both its events are lifted out of the list and the walk restarts at the head. Reaching
//! a return means that operation should already have taken effect: undo the last choice
//! and try the next candidate. A (set, state) pair seen before leads nowhere new, so it
//! is never explored twice. Indeterminate operations return at +infinity: they may take
//! effect anywhere after their call, and placing them after everything else is how they
//! "never" take effect, since nothing observes them there.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::model::Model;

/// One operation as the search sees it.
#[derive(Debug, Clone)]
pub struct SearchOp<O> {
    pub call: u64,
    /// `u64::MAX` for an indeterminate operation.
    pub ret: u64,
    pub indeterminate: bool,
    pub op: O,
}

/// Why a search stopped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Budget,
    Cancelled,
    /// The memo table reached its size limit.
    Memory,
}

/// The deepest point the search reached in a history with no linearization.
#[derive(Debug, Clone)]
pub struct Longest<S> {
    /// Operations (by position in the key's list) in linearization order, each with the
    /// state after it.
    pub linearized: Vec<(usize, S)>,
    /// The state after the prefix.
    pub state: S,
    /// The operation whose return was reached without it having taken effect.
    pub blocker: usize,
    /// Every operation that could have come next (called before `blocker` returned).
    pub candidates: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum Outcome<S> {
    Linearizable,
    NotLinearizable(Longest<S>),
    Stopped(Stop),
}

/// Search result and effort.
#[derive(Debug, Clone)]
pub struct Searched<S> {
    pub outcome: Outcome<S>,
    /// Loop iterations: call events tried plus backtracks.
    pub steps: u64,
    pub memo_entries: usize,
}

/// Words of memoized bitsets above which the search gives up (512 MiB).
const MEMO_WORDS_LIMIT: usize = 64 << 20;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// The memo keys are already well-mixed 64-bit hashes: hashing them again is waste.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer: distinct inputs give independent-looking outputs.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hashes a model state with a cheap multiplicative hasher (states are a few words;
/// SipHash would cost more than the rest of a search step).
fn hash_state<S: Hash>(state: &S) -> u64 {
    let mut h = Fold(0);
    state.hash(&mut h);
    mix(h.0)
}

struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// The set of linearized operations and every (set, state) pair already explored.
struct Memo<S> {
    words: usize,
    current: Vec<u64>,
    /// Zobrist hash of `current`: the XOR of its members' keys, kept incrementally so a
    /// lookup costs one hash, not a pass over the set.
    hash: u64,
    table: HashMap<u64, Vec<u32>, BuildHasherDefault<PassThrough>>,
    sets: Vec<u64>,
    states: Vec<S>,
}

impl<S: Copy + Eq + Hash> Memo<S> {
    fn new(n: usize) -> Self {
        let words = n.div_ceil(64).max(1);
        Memo {
            words,
            current: vec![0; words],
            hash: 0,
            table: HashMap::default(),
            sets: Vec::new(),
            states: Vec::new(),
        }
    }

    fn flip(&mut self, op: usize) {
        self.current[op / 64] ^= 1 << (op % 64);
        self.hash ^= mix(op as u64 ^ 0x5851_f42d_4c95_7f2d);
    }

    /// Records (current set, state); false when it was already there.
    fn insert(&mut self, state: S) -> bool {
        let key = self.hash ^ hash_state(&state);
        let bucket = self.table.entry(key).or_default();
        for &slot in bucket.iter() {
            let slot = slot as usize;
            if self.states[slot] == state
                && self.sets[slot * self.words..(slot + 1) * self.words] == self.current[..]
            {
                return false;
            }
        }
        bucket.push(self.states.len() as u32);
        self.states.push(state);
        self.sets.extend_from_slice(&self.current);
        true
    }

    fn full(&self) -> bool {
        self.sets.len() >= MEMO_WORDS_LIMIT || self.states.len() >= u32::MAX as usize - 1
    }
}

/// The doubly linked list of events; node 0 is the head, node `i + 1` is event `i`.
struct Events {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each node: its operation.
    op: Vec<u32>,
    /// For a call node: its return node; NIL for a return node.
    ret: Vec<u32>,
}

impl Events {
    fn new<O>(ops: &[SearchOp<O>]) -> Events {
        // (time, 0 for call / 1 for return, op): at equal times calls come first, so
        // operations that touch the same instant count as concurrent.
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, 0, i as u32));
            events.push((op.ret, 1, i as u32));
        }
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut list = Events {
            next: (1..=nodes as u32).collect(),
            prev: (0..nodes as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NIL; nodes],
            ret: vec![NIL; nodes],
        };
        list.next[nodes - 1] = NIL;
        list.prev[0] = NIL;
        let mut call_node = vec![NIL; ops.len()];
        let mut ret_node = vec![NIL; ops.len()];
        for (i, &(_, kind, op)) in events.iter().enumerate() {
            let node = i as u32 + 1;
            list.op[node as usize] = op;
            if kind == 0 {
                call_node[op as usize] = node;
            } else {
                ret_node[op as usize] = node;
            }
        }
        for op in 0..ops.len() {
            list.ret[call_node[op] as usize] = ret_node[op];
        }
        list
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }

    /// Takes a call and its return out of the list (Wing & Gong's "lift").
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(self.ret[call as usize]);
    }

    /// Puts them back, in the reverse order of `lift`.
    fn unlift(&mut self, call: u32) {
        self.relink(self.ret[call as usize]);
        self.relink(call);
    }
}

/// Checks one key's operations against `model`. Gives up at `deadline` or when
/// `cancel` is set, checked every 1024 iterations.
pub fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<M::Op>],
    deadline: Instant,
    cancel: &AtomicBool,
) -> Searched<M::State> {
    let mut list = Events::new(ops);
    let mut memo: Memo<M::State> = Memo::new(ops.len());
    // Operations that must take effect before the end; once all have, the
    // indeterminate rest can follow them in any order (or never).
    let mut determinate_left = ops.iter().filter(|o| !o.indeterminate).count();
    let mut calls: Vec<(u32, M::State)> = Vec::new();
    let mut state = model.init();
    let mut longest: Option<Longest<M::State>> = None;
    let mut entry = list.next[HEAD as usize];
    let mut steps: u64 = 0;
    let stopped = |stop| Outcome::Stopped(stop);

    let outcome = loop {
        if determinate_left == 0 {
            break Outcome::Linearizable;
        }
        steps += 1;
        if steps & 1023 == 0 {
            if cancel.load(Ordering::Relaxed) {
                break stopped(Stop::Cancelled);
            }
            if Instant::now() >= deadline {
                break stopped(Stop::Budget);
            }
            if memo.full() {
                break stopped(Stop::Memory);
            }
        }
        let call_ret = list.ret[entry as usize];
        if call_ret != NIL {
            let i = list.op[entry as usize] as usize;
            let op = &ops[i];
            let mut advanced = false;
            if let Some(next) = model.step(state, &op.op, op.indeterminate) {
                memo.flip(i);
                if memo.insert(next) {
                    calls.push((entry, state));
                    state = next;
                    list.lift(entry);
                    if !op.indeterminate {
                        determinate_left -= 1;
                    }
                    entry = list.next[HEAD as usize];
                    advanced = true;
                } else {
                    memo.flip(i);
                }
            }
            if !advanced {
                entry = list.next[entry as usize];
            }
        } else {
            if longest
                .as_ref()
                .is_none_or(|l| calls.len() > l.linearized.len())
            {
                longest = Some(record(&list, &calls, state, entry));
            }
            let Some((call, before)) = calls.pop() else {
                break Outcome::NotLinearizable(longest.take().expect("recorded above"));
            };
            let i = list.op[call as usize] as usize;
            state = before;
            memo.flip(i);
            if !ops[i].indeterminate {
                determinate_left += 1;
            }
            list.unlift(call);
            entry = list.next[call as usize];
        }
    };
    Searched {
        outcome,
        steps,
        memo_entries: memo.states.len(),
    }
}

fn record<S: Copy>(list: &Events, calls: &[(u32, S)], state: S, blocker_ret: u32) -> Longest<S> {
    let linearized = calls
        .iter()
        .enumerate()
        .map(|(k, &(node, _))| {
            let after = calls.get(k + 1).map_or(state, |&(_, before)| before);
            (list.op[node as usize] as usize, after)
        })
        .collect();
    let mut candidates = Vec::new();
    let mut node = list.next[HEAD as usize];
    while node != blocker_ret && node != NIL {
        if list.ret[node as usize] != NIL {
            candidates.push(list.op[node as usize] as usize);
        }
        node = list.next[node as usize];
    }
    Longest {
        linearized,
        state,
        blocker: list.op[blocker_ret as usize] as usize,
        candidates,
    }
}
