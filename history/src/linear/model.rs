//! The models a history can be checked against. A model is what porcupine calls one:
//! an initial state and a step function that says whether an operation, with the
//! outcome the client saw, can take effect in a state and what state follows.
//! Only the register exists today; a new model is one more implementation of
//! [`Model`] plus its conversion from history operations in `input.rs`.

use std::fmt;
use std::hash::Hash;

/// A sequential specification the search replays operations against.
pub trait Model {
    /// Small and cheap to copy: the search keeps one per linearized operation.
    type State: Copy + Eq + Hash + fmt::Debug;
    type Op: Clone + fmt::Debug;

    fn init(&self) -> Self::State;

    /// `Some(next)` when `op` can take effect in `state` (for an indeterminate `op`,
    /// whatever its effect would be), `None` when its observed outcome contradicts it.
    fn step(&self, state: Self::State, op: &Self::Op, indeterminate: bool) -> Option<Self::State>;

    fn describe_op(&self, op: &Self::Op) -> String;
    fn describe_state(&self, state: Self::State) -> String;
}

/// A register value: an integer, or absent (`null`).
pub type RegisterValue = Option<i64>;

/// An operation on one register, with what the client observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value.
    Read(RegisterValue),
    Write(RegisterValue),
    /// Compare-and-set: when the register holds the first value, it becomes the second.
    Cas(RegisterValue, RegisterValue),
}

/// One register, initially absent: reads, writes and compare-and-set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

pub fn show_value(value: RegisterValue) -> String {
    match value {
        Some(v) => v.to_string(),
        None => "null".to_string(),
    }
}

impl Model for Register {
    type State = RegisterValue;
    type Op = RegisterOp;

    fn init(&self) -> RegisterValue {
        None
    }

    fn step(
        &self,
        state: RegisterValue,
        op: &RegisterOp,
        indeterminate: bool,
    ) -> Option<RegisterValue> {
        match *op {
            RegisterOp::Read(seen) => (seen == state).then_some(state),
            RegisterOp::Write(value) => Some(value),
            // A cas acknowledged as applied needs its expected value. An indeterminate
            // one placed here behaves as it would have at this point: it applies when
            // the value matches and changes nothing otherwise. "It never took effect" is
            // the search placing it after everything else, where nothing observes it.
            RegisterOp::Cas(expected, new) if state == expected => Some(new),
            RegisterOp::Cas(..) if indeterminate => Some(state),
            RegisterOp::Cas(..) => None,
        }
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        match *op {
            RegisterOp::Read(v) => format!("read → {}", show_value(v)),
            RegisterOp::Write(v) => format!("write {}", show_value(v)),
            RegisterOp::Cas(a, b) => format!("cas {} → {}", show_value(a), show_value(b)),
        }
    }

    fn describe_state(&self, state: RegisterValue) -> String {
        show_value(state)
    }
}
