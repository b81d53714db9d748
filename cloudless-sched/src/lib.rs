//! cloudless-sched.
