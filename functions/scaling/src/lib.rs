//! Shared library for the autoscaler functions.
