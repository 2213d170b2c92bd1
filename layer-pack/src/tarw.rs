//! tarw (in progress)
