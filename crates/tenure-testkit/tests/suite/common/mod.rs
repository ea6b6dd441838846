//! Helpers shared by the fault tests.

pub mod faults;
