//! A linearizability checker for recorded client histories (Wing & Gong's search with
//! Lowe's memoization, as in Porcupine), with a per-key register model.
//!
//! A history is a set of [`Operation`]s, each with the logical time its call started and,
//! if the client saw an answer, the time it returned and the answer. An operation without an
//! answer (timed out, crashed member) **may or may not have taken effect**: its return time
//! is taken as "after everything", so the search may place it anywhere after its call — at
//! the very end, where it has no visible effect, which covers "did not take effect".
//!
//! The history is **partitioned by key** (operations on different registers commute, and
//! linearizability is compositional — Herlihy & Wing, "locality"), so each key is searched
//! alone. The search keeps a cache of (set of linearized operations, model state) pairs
//! already explored, which bounds it by the number of distinct such pairs instead of the
//! number of orderings.
//!
//! See `docs/design/linearizability.md`.

mod register;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

pub use register::{Register, RegisterInput, RegisterOutput};

/// A sequential specification: the legal behaviour of one object (one key).
pub trait Model {
    /// The object's state.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked for.
    type Input: Debug;
    /// What the client was answered; `None` in an [`Operation`] means no answer.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after applying `input` to `state` with the observed `output` (`None`: the
    /// client saw no answer, any answer is acceptable), or `None` if that answer is
    /// impossible in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One client operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it (for reports only).
    pub client: u64,
    /// The object it acted on; histories are checked per key.
    pub key: u64,
    /// What was asked.
    pub input: I,
    /// Logical time the call started.
    pub call: u64,
    /// The answer and the logical time it arrived, or `None` if the outcome is unknown.
    pub response: Option<(u64, O)>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history has a legal sequential order consistent with real time.
    Linearizable,
    /// The history of `key` has none.
    NotLinearizable {
        /// The offending key.
        key: u64,
        /// Most operations of that key the search managed to order legally.
        longest_prefix: usize,
        /// Operations on that key.
        operations: usize,
    },
    /// The search of `key` gave up after the step budget (the history is too concurrent).
    Inconclusive {
        /// The key whose search ran out of steps.
        key: u64,
    },
}

impl Verdict {
    /// True if the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }
}

/// An operation on `M`.
pub type OpOf<M> = Operation<<M as Model>::Input, <M as Model>::Output>;

/// Default search budget per key (steps of the search; each is one model step or one
/// backtrack).
pub const DEFAULT_STEP_BUDGET: u64 = 50_000_000;

/// Checks `history` against `model`, key by key, with [`DEFAULT_STEP_BUDGET`].
pub fn check<M: Model>(model: &M, history: &[OpOf<M>]) -> Verdict {
    check_with_budget(model, history, DEFAULT_STEP_BUDGET)
}

/// Checks `history` against `model`, key by key, giving up on a key after `budget` steps.
pub fn check_with_budget<M: Model>(model: &M, history: &[OpOf<M>], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<&OpOf<M>>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(model, &ops, budget) {
            KeyResult::Ok => {}
            KeyResult::Violation { longest_prefix } => {
                return Verdict::NotLinearizable {
                    key,
                    longest_prefix,
                    operations: ops.len(),
                };
            }
            KeyResult::OutOfBudget => return Verdict::Inconclusive { key },
        }
    }
    Verdict::Linearizable
}

enum KeyResult {
    Ok,
    Violation { longest_prefix: usize },
    OutOfBudget,
}

/// One call or return event in the doubly linked list the search walks.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    matching: usize,
    prev: usize,
    next: usize,
}

/// A fixed-size bit set of linearized operations (the cache key with the model state).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

fn check_key<M: Model>(model: &M, ops: &[&OpOf<M>], budget: u64) -> KeyResult {
    let n = ops.len();
    if n == 0 {
        return KeyResult::Ok;
    }
    // Events sorted by time; an unknown outcome returns after everything. At equal times a
    // call sorts before a return (the two operations are taken as concurrent).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, true, i));
        let ret = op.response.as_ref().map_or(u64::MAX, |(t, _)| *t);
        order.push((ret.max(op.call), false, i));
    }
    order.sort_by_key(|&(time, is_call, op)| (time, !is_call, op));

    // Node 0 is the list head sentinel; events are 1..=2n.
    let head = 0;
    let mut events = vec![
        Event {
            op: usize::MAX,
            is_call: false,
            matching: 0,
            prev: 0,
            next: 0,
        };
        2 * n + 1
    ];
    let mut return_of = vec![0; n];
    for (pos, &(_, is_call, op)) in order.iter().enumerate() {
        let idx = pos + 1;
        events[idx] = Event {
            op,
            is_call,
            matching: 0,
            prev: idx - 1,
            next: if idx == 2 * n { 0 } else { idx + 1 },
        };
        if !is_call {
            return_of[op] = idx;
        }
    }
    events[head].next = 1;
    for idx in 1..=2 * n {
        if events[idx].is_call {
            events[idx].matching = return_of[events[idx].op];
        }
    }

    let lift = |events: &mut Vec<Event>, call: usize| {
        let Event { prev, next, .. } = events[call];
        events[prev].next = next;
        events[next].prev = prev;
        let ret = events[call].matching;
        let Event { prev, next, .. } = events[ret];
        events[prev].next = next;
        events[next].prev = prev;
    };
    let unlift = |events: &mut Vec<Event>, call: usize| {
        let ret = events[call].matching;
        let Event { prev, next, .. } = events[ret];
        events[prev].next = ret;
        events[next].prev = ret;
        let Event { prev, next, .. } = events[call];
        events[prev].next = call;
        events[next].prev = call;
    };

    let mut state = model.init();
    let mut linearized = Bits::new(n);
    let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest = 0;
    let mut steps = 0u64;
    let mut entry = events[head].next;
    while events[head].next != head {
        steps += 1;
        if steps > budget {
            return KeyResult::OutOfBudget;
        }
        let e = events[entry];
        if e.is_call {
            let op = ops[e.op];
            let next_state =
                model.step(&state, &op.input, op.response.as_ref().map(|(_, out)| out));
            if let Some(next_state) = next_state {
                let mut bits = linearized.clone();
                bits.set(e.op);
                if cache.insert((bits.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = bits;
                    longest = longest.max(stack.len());
                    lift(&mut events, entry);
                    entry = events[head].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            // A return whose call is not yet linearized: the order so far is a dead end.
            let Some((call, previous)) = stack.pop() else {
                return KeyResult::Violation {
                    longest_prefix: longest,
                };
            };
            state = previous;
            linearized.clear(events[call].op);
            unlift(&mut events, call);
            entry = events[call].next;
        }
    }
    KeyResult::Ok
}

#[cfg(test)]
mod tests;
