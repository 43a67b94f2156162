//! The EQL function library (being written).
