//! cloudless-runtime.
