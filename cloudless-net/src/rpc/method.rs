//! Typed method descriptors.

use std::fmt;
use std::marker::PhantomData;

/// A method: its stable name (e.g. `cloudless.v1.Membership/Heartbeat`), its request and
/// response message types, and whether it is idempotent (only idempotent calls are retried).
///
/// Declare each method once as a constant and use it on both sides:
///
/// ```
/// use cloudless_net::rpc::Method;
/// use cloudless_net::wire::pb;
/// const HEARTBEAT: Method<pb::Heartbeat, pb::Node> =
///     Method::idempotent("cloudless.v1.Membership/Heartbeat");
/// assert!(HEARTBEAT.is_idempotent());
/// ```
pub struct Method<Req, Resp> {
    name: &'static str,
    idempotent: bool,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Method<Req, Resp> {
    /// A method that must not be retried (it may have effects on each delivery).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            idempotent: false,
            _types: PhantomData,
        }
    }

    /// A method safe to run more than once; calls are retried per the retry policy.
    pub const fn idempotent(name: &'static str) -> Self {
        Self {
            name,
            idempotent: true,
            _types: PhantomData,
        }
    }

    /// The stable name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// True if calls may be retried.
    pub const fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

impl<Req, Resp> Clone for Method<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Resp> Copy for Method<Req, Resp> {}

impl<Req, Resp> fmt::Debug for Method<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("idempotent", &self.idempotent)
            .finish()
    }
}
