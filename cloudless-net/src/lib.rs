//! cloudless-net.
