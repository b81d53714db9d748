//! (being written: planner/reconciler work)
