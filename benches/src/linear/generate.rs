//! Seeded register histories for the linearizability benchmark: clients issue reads,
//! writes of unique integers and compare-and-set on a few keys, each operation taking
//! effect at a random instant inside its call..return window (so the history is
//! linearizable by construction), some writes and cas indeterminate, and optionally
//! one read made stale on purpose.

use rift_history::{Consistency, Entry, History, Op, OpType};
use serde_json::{Value, json};

/// splitmix64: enough randomness for workloads, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub ops: usize,
    pub keys: usize,
    pub clients: usize,
    /// Share of writes and cas that end `info` (half of them took effect).
    pub indeterminate: f64,
    /// Make one read return the value before the last completed write.
    pub stale_read: bool,
    pub seed: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Read,
    Write,
    Cas,
}

struct Gen {
    process: u64,
    key: usize,
    kind: Kind,
    call: u64,
    ret: u64,
    /// When it took effect; `None`: never (an indeterminate op that did not apply).
    point: Option<u64>,
    info: bool,
    /// Write value or cas new value.
    value: i64,
    expected: Option<i64>,
    read: Option<i64>,
    failed: bool,
}

/// A history as `spec` says; times are nanoseconds.
pub fn generate(spec: &Spec) -> History {
    let mut rng = Rng::new(spec.seed);
    let mut ops: Vec<Gen> = Vec::with_capacity(spec.ops);
    let mut cursor: Vec<u64> = (0..spec.clients).map(|_| rng.below(1_000_000)).collect();
    for i in 0..spec.ops {
        let c = i % spec.clients;
        let call = cursor[c] + rng.below(200_000);
        let duration = 100_000 + rng.below(3_000_000);
        let ret = call + duration;
        cursor[c] = ret;
        let kind = match rng.below(10) {
            0..5 => Kind::Read,
            5..8 => Kind::Write,
            _ => Kind::Cas,
        };
        let info = kind != Kind::Read && rng.chance(spec.indeterminate);
        let point = if info {
            rng.chance(0.5).then(|| call + rng.below(duration * 2))
        } else {
            Some(call + rng.below(duration))
        };
        ops.push(Gen {
            process: c as u64,
            key: rng.below(spec.keys as u64) as usize,
            kind,
            call,
            ret,
            point,
            info,
            value: i as i64 + 1,
            expected: None,
            read: None,
            failed: false,
        });
    }
    // Replay in the order the operations took effect.
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].point.is_some()).collect();
    order.sort_by_key(|&i| ops[i].point);
    let mut state: Vec<Option<i64>> = vec![None; spec.keys];
    // Per key, the state-changing operations in effect order: (value, call, ret).
    let mut changes: Vec<Vec<(Option<i64>, u64, u64)>> = vec![Vec::new(); spec.keys];
    let mut stale_candidates: Vec<(usize, Option<i64>)> = Vec::new();
    for &i in &order {
        let key = ops[i].key;
        match ops[i].kind {
            Kind::Read => {
                ops[i].read = state[key];
                let ch = &changes[key];
                if let [.., prev, last] = ch.as_slice()
                    && last.2 < ops[i].call
                    && prev.2 < last.1
                {
                    stale_candidates.push((i, prev.0));
                }
            }
            Kind::Write => {
                state[key] = Some(ops[i].value);
                changes[key].push((state[key], ops[i].call, ops[i].ret));
            }
            Kind::Cas => {
                if rng.chance(0.6) {
                    ops[i].expected = state[key];
                    state[key] = Some(ops[i].value);
                    changes[key].push((state[key], ops[i].call, ops[i].ret));
                } else {
                    ops[i].expected = Some(-1 - rng.below(1_000) as i64);
                    ops[i].failed = !ops[i].info;
                }
            }
        }
    }
    for op in ops
        .iter_mut()
        .filter(|o| o.kind == Kind::Cas && o.expected.is_none() && o.point.is_none())
    {
        op.expected = Some(-1);
    }
    if spec.stale_read && !stale_candidates.is_empty() {
        let (i, value) = stale_candidates[stale_candidates.len() / 2];
        ops[i].read = value;
    }
    to_history(&ops)
}

fn to_history(ops: &[Gen]) -> History {
    let mut events: Vec<(u64, usize, Op)> = Vec::with_capacity(ops.len() * 2);
    for (n, op) in ops.iter().enumerate() {
        let key = format!("k{}", op.key);
        let node = format!("n{}", op.process % 3 + 1);
        let (f, value): (&str, Value) = match op.kind {
            Kind::Read => ("read", Value::Null),
            Kind::Write => ("write", json!(op.value)),
            Kind::Cas => ("cas", json!([op.expected, op.value])),
        };
        let mut invoke =
            Op::invoke(op.call, op.process, f, Some(&key), value.clone()).with_node(&node);
        if op.kind == Kind::Read {
            invoke = invoke.with_consistency(Consistency::Linearizable);
        }
        let (outcome, done_value) = match op.kind {
            Kind::Read => (OpType::Ok, json!(op.read)),
            _ if op.info => (OpType::Info, value),
            _ if op.failed => (OpType::Fail, value),
            _ => (OpType::Ok, value),
        };
        let done = invoke.complete(op.ret, outcome, done_value);
        events.push((op.call, 2 * n, invoke));
        events.push((op.ret, 2 * n + 1, done));
    }
    events.sort_by_key(|(t, seq, _)| (*t, *seq));
    let mut entries = Vec::with_capacity(events.len());
    for (index, (_, _, mut op)) in events.into_iter().enumerate() {
        op.index = index;
        entries.push(Entry::Op(op));
    }
    History::new(entries)
}
