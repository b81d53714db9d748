//! (being written: pipeline work)
